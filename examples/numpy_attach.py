#!/usr/bin/env python3
"""Open an mpaio shared array from Python as a numpy array, without copying it, and print a summary.

A C++ program that creates a *named* array prints its metadata with ``array.meta().to_json()``::

    auto ints = mpaio::SharedArray<std::int64_t>::create({1000}, {.kind = mpaio::SegmentKind::named});
    std::cout << ints.meta().to_json() << '\\n';
    // {"shm_name":"/mpaio-1234-0123456789abcdef","typestr":"<i8","shape":[1000],"offset":0}

The keys are numpy's own words: ``typestr`` and ``shape`` are those of numpy's array interface, and
``offset`` is the byte offset of element 0 in the segment. Anonymous segments (names starting with
``memfd:``) exist only inside the creating process and its forks: create the array with
``SegmentKind::named`` to share it with Python. The segment's name disappears from /dev/shm when the C++
array is destroyed, but a Python process that already opened it keeps reading valid memory.

Usage::

    numpy_attach.py '<json>' ['<json>' ...]
    my_cpp_program | numpy_attach.py        # one JSON document per line on stdin

or, from your own code::

    from numpy_attach import open_array
    array = open_array(json_text)           # a numpy.ndarray over the shared memory
    print(array.sum())
    del array                               # the segment is closed with the last array or view of it
"""
import ctypes
import json
import math
import sys
from multiprocessing import resource_tracker, shared_memory

import numpy as np


def _open_segment(name):
    """Opens an existing POSIX shared-memory segment that this process borrows and must never unlink."""
    try:
        return shared_memory.SharedMemory(name=name, create=False, track=False)  # Python >= 3.13
    except TypeError:
        shm = shared_memory.SharedMemory(name=name, create=False)
        # Before 3.13 Python registers even an attached segment with its resource tracker, which unlinks it
        # (and warns about a "leak") when this process exits: it would remove the C++ program's array.
        resource_tracker.unregister(shm._name, "shared_memory")  # pylint: disable=protected-access
        return shm


class _BorrowedArray:
    """Describes one mpaio array to numpy through ``__array_interface__`` and keeps its segment open.

    numpy keeps this object as the ``base`` of the array (and of every view of it), so the segment is
    closed exactly when the last of them is gone. (``np.ndarray(buffer=shm.buf)`` would not do: numpy does
    not hold that buffer, so ``shm.close()`` would succeed under a live array and leave it dangling.)
    """

    def __init__(self, shm, meta):
        dtype = np.dtype(meta["typestr"])  # "<i8", "<f4", "|S8", "<U6", ...
        shape = tuple(meta["shape"])
        offset = meta.get("offset", 0)
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes > shm.size:  # numpy cannot check this for us: the interface is a raw address
            raise ValueError(f"{meta['shm_name']}: {nbytes} bytes at offset {offset} do not fit its {shm.size} bytes")
        self._shm = shm
        # A ctypes object over the buffer holds an export of it, so the mapping cannot be closed under us.
        self._anchor = ctypes.c_char.from_buffer(shm.buf, offset if nbytes else 0)
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": dtype.str,
            "data": (ctypes.addressof(self._anchor), False),  # (address, read-only?)
        }

    def __del__(self):
        self._anchor = None  # release the export first, or close() refuses
        self._shm.close()


def open_array(meta):
    """Returns a numpy array viewing the mpaio array `meta` (a dict or its JSON text), zero-copy.

    Writes through the array are seen by the C++ program (and by every other process mapping it).
    """
    if isinstance(meta, (str, bytes)):
        meta = json.loads(meta)
    name = meta["shm_name"]
    if name.startswith("memfd:"):
        raise ValueError(f"{name} is an anonymous segment: only named mpaio segments can be opened by name")
    shm = _open_segment(name.lstrip("/"))
    try:
        return np.asarray(_BorrowedArray(shm, meta))
    except BaseException:
        shm.close()
        raise


def summary(array):
    """One line describing an array: dtype, shape, first elements and, for numbers, min/max/sum."""
    text = f"dtype={array.dtype.str} shape={array.shape} first={array.reshape(-1)[:5].tolist()}"
    if array.size and array.dtype.kind in "biuf":
        text += f" min={array.min()} max={array.max()} sum={array.sum()}"
    return text


def main(argv):
    documents = argv[1:] or [line for line in sys.stdin if line.strip()]
    if not documents:
        print(__doc__, file=sys.stderr)
        return 64
    for document in documents:
        meta = json.loads(document)
        print(f"{meta['shm_name']}: {summary(open_array(meta))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
