"""What the interop checks share: failing with a message, and their command line `SCRIPT PROGRAM`."""
import sys


def fail(message):
    """Ends the check: prints why and exits with status 1, which ctest reports as a failure."""
    print(f"FAIL: {message}")
    sys.exit(1)


def run(main, usage):
    """Calls main(program) with the script's one argument, the C++ program it drives, and exits with its
    status; prints `usage` and exits 64 when the argument is missing."""
    if len(sys.argv) != 2:
        print(usage, file=sys.stderr)
        sys.exit(64)
    sys.exit(main(sys.argv[1]))
