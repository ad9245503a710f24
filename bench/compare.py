#!/usr/bin/python3
"""Builds the benchmarks (release) and prints mpaio's figures beside their references, as ratios.

Every figure comes from this one run: the median of --repetitions repetitions. References: OpenMP and a
serial loop over the same shared memory (Google Benchmark programs in bench/), and Python's process pools
(bench/python/python_pools.py, run with Debian's /usr/bin/python3).

  bench/compare.py                      # 2 workers: the table with the targets
  bench/compare.py --workers 1,2,4,8    # also how the figures scale with the worker count
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "build" / "bench" / "bench"
PYTHON = "/usr/bin/python3"


def run(cmd, env=None):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT).stdout


def google_benchmark(binary, workers, repetitions):
    """Medians of a Google Benchmark program: {name: benchmark entry}."""
    env = dict(os.environ, MPAIO_BENCH_WORKERS=str(workers))
    out = run([str(BIN / binary), f"--benchmark_repetitions={repetitions}", "--benchmark_report_aggregates_only=true",
               "--benchmark_format=json"], env)
    medians = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            medians[b["run_name"].removesuffix("/real_time")] = b
    return medians


def ms(entry):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[entry["time_unit"]]
    return entry["real_time"] * scale


def measure(workers, repetitions):
    dispatch = google_benchmark("bench_dispatch", workers, repetitions)
    sums = google_benchmark("bench_sum", workers, repetitions)
    startup = google_benchmark("bench_startup", workers, repetitions)
    memory = json.loads(run([str(BIN / "bench_memory")], dict(os.environ, MPAIO_BENCH_WORKERS=str(workers))))
    python = json.loads(run([PYTHON, str(ROOT / "bench/python/python_pools.py"), "--workers", str(workers),
                             "--repetitions", str(repetitions)]))
    return {
        "dispatch_inline": dispatch["dispatch/inline"]["items_per_second"],
        "dispatch_thread": dispatch["dispatch/thread"]["items_per_second"],
        "dispatch_process": dispatch["dispatch/process"]["items_per_second"],
        "py_executor_map": python["executor_map"],
        "py_imap_unordered": python["pool_imap_unordered"],
        "serial_ms": ms(sums["serial"]),
        "openmp_ms": ms(sums["openmp_static"]),
        "process_ms": ms(sums["process_partitions"]),
        "thread_ms": ms(sums["thread_partitions"]),
        "openmp_dynamic_ms": ms(sums["openmp_dynamic"]),
        "process_fine_ms": ms(sums["process_fine"]),
        "thread_fine_ms": ms(sums["thread_fine"]),
        "startup_ms": ms(startup["startup"]),
        "py_startup_fork_ms": python["startup_fork_ms"],
        "py_startup_spawn_ms": python["startup_spawn_ms"],
        "worker_private_mib": memory["worker_private_mib"],
        "channel_bytes_per_chunk": memory["channel_bytes_per_chunk"],
    }


def table(m):
    rows = [
        # (what, mpaio figure, reference figure, ratio, target, ok)
        ("dispatch, process executor (chunks/s)", f"{m['dispatch_process']:,.0f}",
         f"Python ProcessPoolExecutor.map {m['py_executor_map']:,.0f}", m["dispatch_process"] / m["py_executor_map"],
         ">= 20x", m["dispatch_process"] / m["py_executor_map"] >= 20),
        ("", "", f"Python Pool.imap_unordered {m['py_imap_unordered']:,.0f}",
         m["dispatch_process"] / m["py_imap_unordered"], "", None),
        ("", "", f"mpaio thread executor {m['dispatch_thread']:,.0f}", m["dispatch_process"] / m["dispatch_thread"],
         ">= 0.5x", m["dispatch_process"] / m["dispatch_thread"] >= 0.5),
        ("", "", f"mpaio inline executor {m['dispatch_inline']:,.0f}", m["dispatch_process"] / m["dispatch_inline"],
         "", None),
        ("seed: sum of 1..1e8, 1 chunk/worker (ms)", f"{m['process_ms']:.1f}", f"OpenMP reduction {m['openmp_ms']:.1f}",
         m["process_ms"] / m["openmp_ms"], "<= 1.15x", m["process_ms"] / m["openmp_ms"] <= 1.15),
        ("", "", f"serial loop {m['serial_ms']:.1f}", m["serial_ms"] / m["process_ms"], ">= 1.6x faster",
         m["serial_ms"] / m["process_ms"] >= 1.6),
        ("", "", f"mpaio thread executor {m['thread_ms']:.1f}", m["process_ms"] / m["thread_ms"], "", None),
        ("fine-grained: same sum, 10,000 chunks (ms)", f"{m['process_fine_ms']:.1f}",
         f"OpenMP dynamic,10000 {m['openmp_dynamic_ms']:.1f}", m["process_fine_ms"] / m["openmp_dynamic_ms"],
         "<= 1.5x", m["process_fine_ms"] / m["openmp_dynamic_ms"] <= 1.5),
        ("", "", f"mpaio thread executor {m['thread_fine_ms']:.1f}", m["process_fine_ms"] / m["thread_fine_ms"], "",
         None),
        ("start-up: pool + 1 chunk + shutdown (ms)", f"{m['startup_ms']:.2f}",
         f"Python fork pool {m['py_startup_fork_ms']:.1f}", m["py_startup_fork_ms"] / m["startup_ms"],
         "<= 3 ms, >= 2x faster", m["startup_ms"] <= 3 and m["py_startup_fork_ms"] / m["startup_ms"] >= 2),
        ("", "", f"Python spawn pool {m['py_startup_spawn_ms']:.1f}", m["py_startup_spawn_ms"] / m["startup_ms"],
         ">= 15x faster", m["py_startup_spawn_ms"] / m["startup_ms"] >= 15),
        ("zero copy: worker private memory, 800 MB sum (MiB)", f"{m['worker_private_mib']:.1f}", "", None,
         "<= 32 MiB", m["worker_private_mib"] <= 32),
        ("channel bytes per chunk besides the result", f"{m['channel_bytes_per_chunk']:.0f}", "", None, "<= 256",
         m["channel_bytes_per_chunk"] <= 256),
    ]
    lines = ["| measure | mpaio | reference | ratio | target | met |", "|---|---:|---|---:|---|---|"]
    for what, ours, ref, ratio, target, ok in rows:
        lines.append(f"| {what} | {ours} | {ref} | {'' if ratio is None else f'{ratio:.2f}x'} | {target} | "
                     f"{'' if ok is None else ('yes' if ok else 'NO')} |")
    return "\n".join(lines), all(ok for *_, ok in rows if ok is not None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="2", help="comma-separated worker counts; the first one gets the table")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--no-build", action="store_true", help="use the binaries already in build/bench")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    if not args.no_build:
        subprocess.run(["cmake", "--preset", "bench"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "--preset", "bench"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    results = {w: measure(w, args.repetitions) for w in counts}
    cores = os.cpu_count()
    text, met = table(results[counts[0]])
    print(f"mpaio benchmarks: {counts[0]} workers, {cores} cores, median of {args.repetitions} repetitions\n")
    print(text)
    if len(counts) > 1:
        print(f"\nScaling with the worker count ({cores} cores on this machine):\n")
        print("| workers | dispatch process (chunks/s) | dispatch thread (chunks/s) | seed process (ms) | "
              "seed OpenMP (ms) | process speed-up vs serial |")
        print("|---:|---:|---:|---:|---:|---:|")
        for w in counts:
            m = results[w]
            print(f"| {w} | {m['dispatch_process']:,.0f} | {m['dispatch_thread']:,.0f} | {m['process_ms']:.1f} | "
                  f"{m['openmp_ms']:.1f} | {m['serial_ms'] / m['process_ms']:.2f}x |")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
