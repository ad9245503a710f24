#!/usr/bin/env python3
"""Interop, numpy -> C++: numpy arrays made in multiprocessing.shared_memory are described by mpaio's
metadata JSON, and `interop_tool check` attaches them and checks every element. Also checks that the C++
side notices a wrong element and refuses an array that does not fit its segment.

usage: numpy_to_cpp.py INTEROP_TOOL
"""
import json
import os
import secrets
import subprocess
import sys
from multiprocessing import shared_memory

try:
    import numpy as np
except ImportError:
    print("numpy is not installed: skipping")
    sys.exit(77)  # ctest SKIP_RETURN_CODE

from interop_check import fail, run  # this folder is on sys.path: the script's own


# The patterns interop_tool expects, by flat index i (see check_one in interop_tool.cpp).
def arrays():
    yield "ints", np.arange(1, 1001, dtype="<i8"), 0
    yield "names", np.array([f"foo_{i}" for i in range(100)], dtype="<U6"), 0
    yield "halves", np.arange(257, dtype="<f8") * 0.5, 0
    yield "quarters", (np.arange(33, dtype="<f4") / 4).astype("<f4"), 4
    yield "matrix", (np.arange(7 * 13, dtype="<i4") - 50).reshape(7, 13), 64  # 2-d, at an offset
    yield "bytes", np.array([f"bar_{i}".encode() for i in range(50)], dtype="|S8"), 3  # 1-byte aligned
    yield "flags", np.arange(40) % 3 == 0, 0
    yield "complex", np.arange(20) - 1j * np.arange(20), 16
    yield "shorts", (np.arange(10_000) * 7 % 65536).astype("<u2"), 2


def run_check(tool, metas):
    out = subprocess.run([tool, "check", *map(json.dumps, metas)], capture_output=True, text=True, timeout=60,
                         check=False)
    return out.returncode, out.stdout + out.stderr


def main(tool):
    segments = []
    try:
        metas = {}
        views = {}
        for label, values, offset in arrays():
            # mpaio-* names, so that the suite's leftover check would catch a segment this script forgot.
            name = f"mpaio-py-{os.getpid()}-{secrets.token_hex(8)}"
            shm = shared_memory.SharedMemory(name=name, create=True, size=offset + values.nbytes)
            segments.append(shm)
            view = np.frombuffer(shm.buf, dtype=values.dtype, count=values.size, offset=offset).reshape(values.shape)
            view[...] = values
            views[label] = view
            metas[label] = {"shm_name": "/" + shm.name, "typestr": values.dtype.str, "shape": list(values.shape),
                            "offset": offset}

        code, output = run_check(tool, list(metas.values()))
        print(output, end="")
        if code != 0 or output.count("ok ") != len(metas):
            fail(f"interop_tool check exited {code}")

        # One wrong element is found, and named.
        views["ints"][500] = -7
        code, output = run_check(tool, [metas["ints"]])
        print(output, end="")
        if code != 1 or "element 500" not in output or "-7" not in output:
            fail(f"a changed element went unnoticed (exit {code})")
        views["ints"][500] = 501
        views["names"][42] = "oops"
        code, output = run_check(tool, [metas["names"]])
        if code != 1 or "element 42" not in output or '"oops"' not in output:
            fail(f"a changed string went unnoticed (exit {code}): {output}")
        views["names"][42] = "foo_42"

        # Metadata that claims more than the segment holds is refused, not read past the end.
        too_big = dict(metas["ints"], shape=[1001])
        code, output = run_check(tool, [too_big])
        print(output, end="")
        if code != 2 or "8008 bytes" not in output:
            fail(f"an array larger than its segment was accepted (exit {code})")
        # So is a dtype that is not the data's... (the check reads <f8 halves as if they were <i8).
        code, output = run_check(tool, [dict(metas["halves"], typestr="<i8")])
        if code != 1:
            fail(f"reinterpreting <f8 as <i8 went unnoticed (exit {code})")
        # ... and a misaligned offset.
        code, output = run_check(tool, [dict(metas["ints"], offset=4, shape=[999])])
        if code != 2 or "offset 4" not in output:
            fail(f"a misaligned offset was accepted (exit {code}): {output}")

        code, output = run_check(tool, list(metas.values()))
        if code != 0:
            fail(f"the restored arrays no longer check (exit {code}): {output}")
    finally:
        views = view = None  # drop the numpy views before closing their buffers
        for shm in segments:
            shm.close()
            shm.unlink()
    leftovers = [n for n in os.listdir("/dev/shm") if n.startswith(f"mpaio-py-{os.getpid()}-")]
    if leftovers:
        fail(f"left behind: {leftovers}")
    print("ok: C++ read every element of the numpy arrays")
    return 0


if __name__ == "__main__":
    run(main, __doc__)
