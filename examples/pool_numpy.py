#!/usr/bin/env python3
"""Open an array of a *named* SharedMemoryPool from numpy, without copying it.

A pool array's ``meta().to_json()`` names its data segment and the byte offset of the array in it, like a
SharedArray's, so numpy_attach.open_array reads it as is::

    pool_tiles --named --hold 5 | python3 examples/pool_numpy.py

numpy takes no pool reference: the C++ side must keep the array's handle alive while Python reads it (the
example holds it for --hold seconds). Anonymous (memfd) pools are not reachable from Python.
"""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from numpy_attach import open_array  # noqa: E402


def main():
    line = sys.stdin.readline() if len(sys.argv) < 2 else sys.argv[1]
    if not line.strip():
        print("pool_numpy.py: no array metadata on stdin (run pool_tiles with --named)", file=sys.stderr)
        return 1
    meta = json.loads(line)
    array = open_array(line)
    print(f"{meta['shm_name']} offset {meta['offset']}: {array.dtype} {array.shape}, "
          f"mean {array.mean():.3f}, first row {array[0, :4]}")
    del array
    return 0


if __name__ == "__main__":
    sys.exit(main())
