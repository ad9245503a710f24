#!/usr/bin/env python3
"""Interop, SharedMemoryPool -> numpy: `pool_tiles --named` prints the metadata of tile 0's half-resolution
result, an array in a data segment of a named pool at a non-zero offset; examples/pool_numpy.py reads it
and numpy checks every element against the downsampling computed here. Fails if numpy reads anything else.

usage: pool_tiles_to_numpy.py POOL_TILES
"""
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
from numpy_attach import open_array  # noqa: E402  pylint: disable=wrong-import-position
from interop_check import fail, run  # noqa: E402  (this folder is on sys.path: the script's own)

TILE = 64


def expected_half_tile():
    """Tile 0 of pool_tiles (pixel j is j % 251), each 2x2 block averaged as pool_tiles does, in float32."""
    tile = (np.arange(TILE * TILE) % 251).reshape(TILE, TILE).astype(np.int32)
    sums = tile[0::2, 0::2] + tile[0::2, 1::2] + tile[1::2, 0::2] + tile[1::2, 1::2]
    return (sums / 4.0).astype(np.float32)  # sums <= 1020: exact in float32, as in C++


def main(pool_tiles):
    producer = subprocess.Popen([pool_tiles, "--named", "--wait-stdin", "--tiles", "300", "--workers", "2"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, producer.kill)  # a hang fails the test instead of blocking it
    watchdog.start()
    try:
        line = producer.stdout.readline()
        if not line.strip():
            fail(f"pool_tiles printed no metadata (exit status {producer.wait()})")
        meta = json.loads(line)
        print("pool array:", meta)
        if not meta["shm_name"].startswith("/mpaio-") or meta["offset"] == 0:
            fail(f"{meta['shm_name']} offset {meta['offset']}: not an array inside a named pool segment")
        expected = expected_half_tile()

        # The example script, as a user would run it.
        out = subprocess.run([sys.executable, str(EXAMPLES / "pool_numpy.py"), line], capture_output=True, text=True,
                             timeout=30, check=False)
        print(out.stdout, end="")
        if out.returncode != 0:
            fail(f"pool_numpy.py exited {out.returncode}: {out.stdout}{out.stderr}")
        want_mean = f"mean {expected.mean():.3f}"
        if "float32 (32, 32)" not in out.stdout or want_mean not in out.stdout:
            fail(f"pool_numpy.py printed {out.stdout.strip()!r}, expected float32 (32, 32) and {want_mean}")
        first_row = re.search(r"first row \[([^\]]*)\]", out.stdout)
        if first_row is None or [float(v) for v in first_row.group(1).split()] != expected[0, :4].tolist():
            fail(f"pool_numpy.py printed the first row {first_row and first_row.group(1)!r}, "
                 f"expected {expected[0, :4].tolist()}")

        # Every element, through the same module.
        half = open_array(meta)
        if half.dtype != np.dtype("<f4") or half.shape != (TILE // 2, TILE // 2):
            fail(f"the array is {half.dtype} {half.shape}")
        if not np.array_equal(half, expected):
            y, x = np.argwhere(half != expected)[0]
            fail(f"element [{y}, {x}] is {half[y, x]}, expected {expected[y, x]}")
        del half

        producer.stdin.close()  # pool_tiles may now drop its arrays and its pool
        if producer.wait(timeout=30) != 0:
            fail(f"pool_tiles exited with {producer.returncode}")
        if (Path("/dev/shm") / meta["shm_name"].lstrip("/")).exists():
            fail(f"{meta['shm_name']} was not unlinked when the pool went")
    finally:
        watchdog.cancel()
        if producer.poll() is None:  # a failed check: let it remove its pool, kill it only if it hangs
            producer.stdin.close()
            try:
                producer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                producer.kill()
                producer.wait()
    print("ok: numpy read every element of the pool array")
    return 0


if __name__ == "__main__":
    run(main, __doc__)
