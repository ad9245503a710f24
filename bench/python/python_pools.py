#!/usr/bin/python3
"""Python references for the mpaio benchmarks: dispatch rate of no-op tasks and pool start-up time.

Prints one JSON object: {"executor_map": tasks/s, "pool_imap_unordered": tasks/s,
"startup_fork_ms": median ms, "startup_spawn_ms": median ms}.
"""
import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import statistics
import time


def noop(x):
    return 0


def dispatch_executor_map(workers, tasks):
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        list(pool.map(noop, range(workers * 4)))  # warm-up: workers started
        start = time.perf_counter()
        for _ in pool.map(noop, range(tasks)):
            pass
        return tasks / (time.perf_counter() - start)


def dispatch_pool_imap_unordered(workers, tasks):
    with mp.get_context("fork").Pool(workers) as pool:
        list(pool.imap_unordered(noop, range(workers * 4), chunksize=1))
        start = time.perf_counter()
        for _ in pool.imap_unordered(noop, range(tasks), chunksize=1):
            pass
        return tasks / (time.perf_counter() - start)


def startup_ms(method, workers):
    """Create a pool, run one empty task, shut it down."""
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
        pool.submit(noop, 0).result()
    return (time.perf_counter() - start) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    reps = args.repetitions
    result = {
        "executor_map": statistics.median(dispatch_executor_map(args.workers, args.tasks) for _ in range(reps)),
        "pool_imap_unordered": statistics.median(
            dispatch_pool_imap_unordered(args.workers, args.tasks) for _ in range(reps)),
        "startup_fork_ms": statistics.median(startup_ms("fork", args.workers) for _ in range(reps * 2)),
        "startup_spawn_ms": statistics.median(startup_ms("spawn", args.workers) for _ in range(reps)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
