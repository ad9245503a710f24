#!/usr/bin/env python3
"""Interop, C++ -> numpy: `interop_tool create` makes named arrays; numpy attaches them by name and checks
every element. Uses examples/numpy_attach.py both as a module and as a command.

usage: cpp_to_numpy.py INTEROP_TOOL
"""
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

try:
    import numpy as np
except ImportError:
    print("numpy is not installed: skipping")
    sys.exit(77)  # ctest SKIP_RETURN_CODE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
from numpy_attach import open_array  # noqa: E402  pylint: disable=wrong-import-position
from interop_check import fail, run  # noqa: E402  (this folder is on sys.path: the script's own)

N = 1000


def main(tool):
    creator = subprocess.Popen([tool, "create", str(N)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, creator.kill)  # a hang fails the test instead of blocking it
    watchdog.start()
    try:
        metas = [json.loads(creator.stdout.readline()) for _ in range(2)]
        ints_meta, names_meta = metas
        print("C++ arrays:", *metas, sep="\n  ")
        for meta in metas:
            path = Path("/dev/shm") / meta["shm_name"].lstrip("/")
            if not path.exists():
                fail(f"{path} does not exist")
            if stat.S_IMODE(path.stat().st_mode) != 0o600:
                fail(f"{path} has mode {oct(stat.S_IMODE(path.stat().st_mode))}, not 0600")

        ints = open_array(ints_meta)
        if ints.dtype != np.dtype("<i8") or ints.shape != (N,):
            fail(f"int array is {ints.dtype} {ints.shape}")
        expected = np.arange(1, N + 1, dtype=np.int64)
        if not np.array_equal(ints, expected):
            bad = int(np.flatnonzero(ints != expected)[0])
            fail(f"int array element {bad} is {ints[bad]}, expected {expected[bad]}")
        if int(ints.sum()) != N * (N + 1) // 2:
            fail("int array sum")

        names = open_array(json.dumps(names_meta))  # JSON text works too
        if names.dtype != np.dtype("<U6") or names.shape != (100,):
            fail(f"string array is {names.dtype} {names.shape}")
        want = [f"foo_{i}" for i in range(100)]
        if names.tolist() != want:
            bad = next(i for i, (a, b) in enumerate(zip(names.tolist(), want)) if a != b)
            fail(f"string array element {bad} is {names[bad]!r}, expected {want[bad]!r}")
        del names  # closes that segment

        # The example script, as a user would run it: JSON lines on stdin, a summary per array.
        out = subprocess.run([sys.executable, str(EXAMPLES / "numpy_attach.py")], input="\n".join(map(json.dumps, metas)),
                             capture_output=True, text=True, timeout=30, check=False)
        print(out.stdout, end="")
        if out.returncode != 0 or f"sum={N * (N + 1) // 2}" not in out.stdout or "'foo_0'" not in out.stdout:
            fail(f"numpy_attach.py exited {out.returncode}: {out.stdout}{out.stderr}")
        if "leaked" in out.stderr or "Warning" in out.stderr:
            fail(f"numpy_attach.py warned: {out.stderr}")
        for meta in metas:  # a borrowing process must not have unlinked them (Python's resource tracker)
            if not (Path("/dev/shm") / meta["shm_name"].lstrip("/")).exists():
                fail(f"{meta['shm_name']} disappeared while its creator is alive")

        # The creator exits and unlinks its segments; the mapping Python already holds stays valid.
        creator.stdin.write("exit\n")
        creator.stdin.flush()
        if creator.wait(timeout=10) != 0:
            fail(f"interop_tool create exited with {creator.returncode}")
        for meta in metas:
            if (Path("/dev/shm") / meta["shm_name"].lstrip("/")).exists():
                fail(f"{meta['shm_name']} was not unlinked by its creator")
        if not np.array_equal(ints, expected):
            fail("the int array changed after its creator exited")
        del ints
    finally:
        watchdog.cancel()
        if creator.poll() is None:
            creator.kill()
            creator.wait()
    print("ok: numpy read every element of the C++ arrays")
    return 0


if __name__ == "__main__":
    run(main, __doc__)
