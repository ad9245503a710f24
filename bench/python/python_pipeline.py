#!/usr/bin/python3
"""Python reference for bench_pipeline: the camera diamond with the standard library, as users write it.

detector -> size_estimator ∥ classifier -> aggregator, one multiprocessing.Process per stage, connected by
multiprocessing.Queue(maxsize=max_in_flight); the detector forwards (id, frame, boxes) to both middle
stages, the aggregator joins their results by item id. Frames are numpy arrays, pickled through the queues
(as users send them); the main process keeps at most max_in_flight items in the pipeline. Stage costs burn
CPU time of the stage's thread (time.thread_time), as bench_pipeline.cpp does, and the stage functions
compute what its functions compute.

Scenarios (the same names as bench_pipeline's):
  pipelined_diamond_1080p  1080x1920x3 uint8 frames; detector 4 ms, middle 8 ms each, aggregator 1 ms; 4 in flight
  empty_stages             8-byte items (Python ints), every cost 0; 64 in flight

Prints one JSON object: {scenario: items per second (median of --repetitions batches)}.
"""
import argparse
import json
import multiprocessing as mp
import statistics
import time

import numpy as np

STRIDE = 4096  # the bytes an item's maker writes and the detector reads (bench_pipeline.cpp's kStride)

SCENARIOS = {
    # name: (detector_us, middle_us, aggregator_us, max_in_flight, frame shape or None, items, warm-up items)
    "pipelined_diamond_1080p": (4000, 8000, 1000, 4, (1080, 1920, 3), 40, 8),
    "empty_stages": (0, 0, 0, 64, None, 5000, 500),
}


def burn(us):
    """Burns `us` microseconds of this thread's CPU time."""
    if us <= 0:
        return
    end = time.thread_time() + us / 1e6
    x = 0
    while time.thread_time() < end:
        x += 1


def item_bytes(item):
    """The item as bytes the stage functions read: a frame's flat view, or an int's 8 little-endian bytes."""
    if isinstance(item, np.ndarray):
        return item.reshape(-1)
    return item.to_bytes(8, "little", signed=True)


def detector(item, cost_us):
    burn(cost_us)
    flat = item_bytes(item)
    if isinstance(flat, np.ndarray):
        return int(flat[-1]) + int(flat[::STRIDE].sum(dtype=np.int64))
    return flat[-1] + sum(flat[::STRIDE])


def size_estimator(item, boxes, cost_us):
    burn(cost_us)
    return boxes + len(item_bytes(item))


def classifier(item, boxes, cost_us):
    burn(cost_us)
    flat = item_bytes(item)
    return 2 * boxes + int(flat[len(flat) // 2])


def aggregator(size, kind, cost_us):
    burn(cost_us)
    return size * 1_000_003 + kind


def expected(item):
    boxes = detector(item, 0)
    return aggregator(size_estimator(item, boxes, 0), classifier(item, boxes, 0), 0)


# ---- the stage processes: None ends the stream --------------------------------------------------------------

def detector_main(inbox, to_size, to_class, cost_us):
    while (msg := inbox.get()) is not None:
        item_id, item = msg
        boxes = detector(item, cost_us)
        to_size.put((item_id, item, boxes))
        to_class.put((item_id, item, boxes))
    to_size.put(None)
    to_class.put(None)


def middle_main(inbox, outbox, tag, cost_us):
    fn = size_estimator if tag == 0 else classifier
    while (msg := inbox.get()) is not None:
        item_id, item, boxes = msg
        outbox.put((item_id, tag, fn(item, boxes, cost_us)))
    outbox.put(None)


def aggregator_main(inbox, outbox, cost_us):
    waiting = {}  # item id -> the first branch's (tag, value)
    ends = 0
    while ends < 2:
        msg = inbox.get()
        if msg is None:
            ends += 1
            continue
        item_id, tag, value = msg
        other = waiting.pop(item_id, None)
        if other is None:
            waiting[item_id] = (tag, value)
            continue
        size, kind = (value, other[1]) if tag == 0 else (other[1], value)
        outbox.put((item_id, aggregator(size, kind, cost_us)))
    outbox.put(None)


class Diamond:
    def __init__(self, detector_us, middle_us, aggregator_us, max_in_flight, shape):
        ctx = mp.get_context("fork")
        q = [ctx.Queue(maxsize=max_in_flight) for _ in range(5)]  # in, to size, to classifier, to aggregator, out
        self.inbox, self.outbox = q[0], q[4]
        self.max_in_flight = max_in_flight
        self.procs = [
            ctx.Process(target=detector_main, args=(q[0], q[1], q[2], detector_us), name="detector"),
            ctx.Process(target=middle_main, args=(q[1], q[3], 0, middle_us), name="size_estimator"),
            ctx.Process(target=middle_main, args=(q[2], q[3], 1, middle_us), name="classifier"),
            ctx.Process(target=aggregator_main, args=(q[3], q[4], aggregator_us), name="aggregator"),
        ]
        for p in self.procs:
            p.start()
        # Frames come from a ring larger than the items that can be alive at once: a queue pickles an item
        # in its feeder thread after put() returns, so a frame is not rewritten before its item has ended.
        self.ring = [np.zeros(shape, np.uint8) for _ in range(2 * max_in_flight + 2)] if shape else None
        self.expected = {}
        self.next_id = 0

    def make(self, item_id):
        if self.ring is None:
            return item_id
        frame = self.ring[item_id % len(self.ring)]
        flat = frame.reshape(-1)
        mark = item_id % 251
        flat[::STRIDE] = mark
        flat[-1] = mark
        return frame

    def expected_of(self, item_id, item):
        if self.ring is None:
            return expected(item)
        key = item_id % 251
        if key not in self.expected:
            self.expected[key] = expected(item)
        return self.expected[key]

    def run(self, n):
        """Items [next id, + n) with at most max_in_flight in the pipeline; returns items per second."""
        first = self.next_id
        self.next_id += n
        want = {}
        sent = got = 0
        start = time.perf_counter()
        while got < n:
            while sent < n and sent - got < self.max_in_flight:
                item_id = first + sent
                item = self.make(item_id)
                want[item_id] = self.expected_of(item_id, item)
                self.inbox.put((item_id, item))
                sent += 1
            item_id, result = self.outbox.get()
            if result != want.pop(item_id):
                raise RuntimeError(f"item {item_id}: wrong result {result}")
            got += 1
        return n / (time.perf_counter() - start)

    def close(self):
        self.inbox.put(None)
        if self.outbox.get() is not None:
            raise RuntimeError("a result after the last item")
        for p in self.procs:
            p.join(10)
            if p.exitcode is None:
                p.kill()
                p.join()


def measure(name, repetitions, items=None):
    detector_us, middle_us, aggregator_us, max_in_flight, shape, default_items, warmup = SCENARIOS[name]
    diamond = Diamond(detector_us, middle_us, aggregator_us, max_in_flight, shape)
    try:
        diamond.run(warmup)
        return statistics.median(diamond.run(items or default_items) for _ in range(repetitions))
    finally:
        diamond.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="one scenario (default: all)")
    parser.add_argument("--items", type=int, help="items per batch (default: 40 frames, 5000 empty items)")
    args = parser.parse_args()
    names = [args.only] if args.only else list(SCENARIOS)
    print(json.dumps({name: measure(name, args.repetitions, args.items) for name in names}))


if __name__ == "__main__":
    main()
