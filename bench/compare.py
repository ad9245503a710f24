#!/usr/bin/python3
"""Builds the benchmarks (release) and prints mpaio's figures beside their references, as ratios.

Every figure comes from this one run: the median of --repetitions repetitions. References: OpenMP and a
serial loop over the same shared memory (Google Benchmark programs in bench/), Python's process pools
(bench/python/python_pools.py, run with Debian's /usr/bin/python3), for the SharedMemoryPool a shared
segment per array (bench/bench_pool.cpp), and for pipelines the same stage functions run one after the
other, in a oneTBB flow graph (bench/bench_pipeline.cpp) and in multiprocessing stages
(bench/python/python_pipeline.py).

  bench/compare.py                      # 2 workers: the table with the targets (engine, pool, pipeline)
  bench/compare.py --workers 1,2,4,8    # also how the figures scale with the worker count
  bench/compare.py --only pool          # only the SharedMemoryPool rows (about 40 s)
  bench/compare.py --only pipeline      # only the pipeline rows (about 1 min with 5 repetitions)
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
    return medians_of(binary, out, lambda name: name.removesuffix("/real_time"))


def medians_of(binary, out, key):
    """The median entries of Google Benchmark JSON output, by key(run_name); a failed benchmark (it reports
    an error instead of aggregates) raises, naming it and its message."""
    medians = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("error_occurred"):
            raise RuntimeError(f"{binary} {b.get('run_name', b.get('name'))}: {b.get('error_message')}")
        if b.get("aggregate_name") == "median":
            medians[key(b["run_name"])] = b
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


def pool_key(run_name):
    """'BM_Pool_CrossProcessAttachDetach/iterations:1/manual_time' -> 'BM_Pool_CrossProcessAttachDetach'."""
    parts = [p for p in run_name.split("/")
             if not p.startswith(("iterations:", "repeats:", "min_time:")) and p not in ("manual_time", "real_time")]
    return "/".join(parts)


def measure_pool(repetitions, stress_seconds):
    """bench_pool: medians of the timed benchmarks, then one run of the 8-process stress test."""
    out = run([str(BIN / "bench_pool"), "--benchmark_filter=-Stress", f"--benchmark_repetitions={repetitions}",
               "--benchmark_report_aggregates_only=true", "--benchmark_format=json"])
    medians = medians_of("bench_pool", out, pool_key)
    env = dict(os.environ, MPAIO_POOL_STRESS_SECONDS=str(stress_seconds))
    out = run([str(BIN / "bench_pool"), "--benchmark_filter=Stress", "--benchmark_format=json"], env)
    stress = json.loads(out)["benchmarks"][0]

    def us(name):
        entry = medians[name]
        return entry["real_time"] * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[entry["time_unit"]]

    cross = medians["BM_Pool_CrossProcessAttachDetach"]
    return {
        "pool_alloc_free_us": us("BM_Pool_AllocFree"),
        "segment_alloc_free_us": us("BM_SegmentPerArray_AllocFree"),
        "pool_alloc_write_free_us": us("BM_Pool_AllocWriteFree"),
        "segment_alloc_write_free_us": us("BM_SegmentPerArray_AllocWriteFree"),
        "pool_live_10_us": us("BM_Pool_AllocFree_Live/10"),
        "pool_live_10000_us": us("BM_Pool_AllocFree_Live/10000"),
        "attach_median_us": cross["median_ns"] / 1e3,
        "attach_p99_us": cross["p99_ns"] / 1e3,
        "attach_p999_us": cross["p999_ns"] / 1e3,
        "stress_seconds": stress_seconds,
        "stress_ok": not stress.get("error_occurred", False),
        "stress_error": stress.get("error_message", ""),
        "stress_allocations": stress.get("allocations", 0),
        "stress_failed": stress.get("failed", 0),
        "stress_failed_with_room": stress.get("failed_with_2x_free", 0),
        "stress_p50_us": stress.get("p50_ns", 0) / 1e3,
        "stress_p99_us": stress.get("p99_ns", 0) / 1e3,
        "stress_p999_us": stress.get("p999_ns", 0) / 1e3,
        "stress_bytes_left": stress.get("bytes_in_use_after", -1),
    }


def pool_rows(m):
    speed = m["segment_alloc_free_us"] / m["pool_alloc_free_us"]
    write_speed = m["segment_alloc_write_free_us"] / m["pool_alloc_write_free_us"]
    live = m["pool_live_10000_us"] / m["pool_live_10_us"]
    stress_met = m["stress_ok"] and m["stress_failed"] == 0 and m["stress_bytes_left"] == 0
    stress_note = "" if m["stress_ok"] else f" ({m['stress_error']})"
    return [
        ("pool: allocate + free, 4 KiB array (us)", f"{m['pool_alloc_free_us']:.3f}",
         f"a segment per array {m['segment_alloc_free_us']:.2f}", speed, ">= 20x faster, < 0.5 us",
         speed >= 20 and m["pool_alloc_free_us"] < 0.5),
        ("pool: allocate + write + free, 4 KiB (us)", f"{m['pool_alloc_write_free_us']:.3f}",
         f"a segment per array {m['segment_alloc_write_free_us']:.2f}", write_speed, ">= 30x faster",
         write_speed >= 30),
        ("pool: allocate + free with 10,000 live blocks (us)", f"{m['pool_live_10000_us']:.3f}",
         f"with 10 live blocks {m['pool_live_10_us']:.3f}", live, "<= 2x", live <= 2),
        ("pool: attach + detach in another process, median (us)", f"{m['attach_median_us']:.3f}",
         f"p99 {m['attach_p99_us']:.3f}, p99.9 {m['attach_p999_us']:.3f}", None, "< 1 us",
         m["attach_median_us"] < 1),
        (f"pool: 8 processes, random sizes, {m['stress_seconds']:g} s (allocations)",
         f"{m['stress_allocations']:,.0f}",
         f"failed {m['stress_failed']:.0f} ({m['stress_failed_with_room']:.0f} with 2x free), p50 "
         f"{m['stress_p50_us']:.2f} us, p99 {m['stress_p99_us']:.2f} us, p99.9 {m['stress_p999_us']:.2f} us, "
         f"{m['stress_bytes_left']:.0f} bytes left{stress_note}", None, "no deadlock, 0 failed", stress_met),
    ]


PIPELINE_SCENARIOS = ["seed_controller", "pipelined_diamond", "pipelined_diamond_1080p", "empty_stages", "latency"]


def measure_pipeline(repetitions):
    """bench_pipeline (every engine, every scenario: medians) and the Python reference."""
    cmd = [str(BIN / "bench_pipeline"), "--benchmark_format=json"]
    if repetitions > 1:
        cmd += [f"--benchmark_repetitions={repetitions}", "--benchmark_report_aggregates_only=true"]
    out = run(cmd)
    if repetitions > 1:
        entries = medians_of("bench_pipeline", out, pool_key)
    else:  # one run: no aggregates, the run itself
        entries = {}
        for b in json.loads(out)["benchmarks"]:
            if b.get("error_occurred"):
                raise RuntimeError(f"bench_pipeline {b.get('run_name', b.get('name'))}: {b.get('error_message')}")
            entries[pool_key(b["run_name"])] = b
    python = json.loads(run([PYTHON, str(ROOT / "bench/python/python_pipeline.py"),
                             "--repetitions", str(repetitions)]))
    m = {}
    for engine, key in (("mpaio", "mpaio_pipeline"), ("tbb", "onetbb_flow_graph"), ("seq", "sequential")):
        for i, scenario in enumerate(PIPELINE_SCENARIOS):
            entry = entries[f"{key}/scenario:{i}"]
            m[f"pipe_{engine}_{scenario}"] = entry["items_per_s"]
            if scenario == "latency":
                m[f"pipe_{engine}_latency_p50_us"] = entry["p50_us"]
                m[f"pipe_{engine}_latency_p99_us"] = entry["p99_us"]
    for scenario, items_per_s in python.items():
        m[f"pipe_py_{scenario}"] = items_per_s
    for i, scenario in enumerate(["churn_clean", "churn_killed"], start=len(PIPELINE_SCENARIOS)):
        entry = entries[f"mpaio_pipeline/scenario:{i}"]
        m[f"pipe_mpaio_{scenario}"] = entry["items_per_s"]
        if scenario == "churn_killed":
            m["pipe_kills"] = entry["kills"]
            m["pipe_killed_items"] = entry["failed_items"]
    return m


def pipeline_rows(m):
    def rate(engine, scenario):
        return m[f"pipe_{engine}_{scenario}"]

    def rows(what, scenario, refs):
        """One row per reference: (name, engine, target ratio or None); the first names the measure."""
        out = []
        ours = rate("mpaio", scenario)
        for i, (name, engine, target) in enumerate(refs):
            ref = rate(engine, scenario)
            ratio = ours / ref
            out.append((what if i == 0 else "", f"{ours:,.1f}" if i == 0 else "", f"{name} {ref:,.1f}", ratio,
                        "" if target is None else f">= {target}x", None if target is None else ratio >= target))
        return out

    seq, tbb, py = "sequential", "oneTBB flow graph", "Python multiprocessing"
    p50, p99 = m["pipe_mpaio_latency_p50_us"], m["pipe_mpaio_latency_p99_us"]
    return (
        rows("pipeline a) seed controller: 0 / 10 ∥ 10 / 0 ms, 1 in flight, 640x480 (items/s)", "seed_controller",
             [(seq, "seq", 1.85), (tbb, "tbb", None)])
        + rows("pipeline b) diamond: 4 / 8 ∥ 8 / 1 ms, 4 in flight, 640x480 (items/s)", "pipelined_diamond",
               [(seq, "seq", 1.8), (tbb, "tbb", 0.95)])
        + rows("pipeline b) same, 1080p frames (items/s)", "pipelined_diamond_1080p",
               [(py, "py", 1.3), (seq, "seq", None), (tbb, "tbb", None)])
        + rows("pipeline c) empty stages, 8-byte items, 64 in flight (items/s)", "empty_stages",
               [(tbb, "tbb", 0.5), (py, "py", 10), (seq, "seq", None)])
        + [("pipeline d) latency, 1 item in flight, empty stages: p50 (us)", f"{p50:.1f}",
            f"oneTBB flow graph {m['pipe_tbb_latency_p50_us']:.1f}", None, "<= 150 us", p50 <= 150),
           ("pipeline d) same: p99 (us)", f"{p99:.1f}", f"oneTBB flow graph {m['pipe_tbb_latency_p99_us']:.1f}", None,
            "<= 1000 us", p99 <= 1000)]
        + [("pipeline e) a random stage process SIGKILLed every 100 ms, retries 2 (items/s; "
            f"{m['pipe_kills']:.0f} kills, {m['pipe_killed_items']:.0f} items failed)",
            f"{m['pipe_mpaio_churn_killed']:,.1f}", f"the same run without kills {m['pipe_mpaio_churn_clean']:,.1f}",
            m["pipe_mpaio_churn_killed"] / m["pipe_mpaio_churn_clean"], ">= 0.7x",
            m["pipe_mpaio_churn_killed"] / m["pipe_mpaio_churn_clean"] >= 0.7)]
    )


def table(m):
    rows = []
    if "dispatch_process" in m:
        rows += engine_rows(m)
    if "pool_alloc_free_us" in m:
        rows += pool_rows(m)
    if "pipe_mpaio_seed_controller" in m:
        rows += pipeline_rows(m)
    lines = ["| measure | mpaio | reference | ratio | target | met |", "|---|---:|---|---:|---|---|"]
    for what, ours, ref, ratio, target, ok in rows:
        lines.append(f"| {what} | {ours} | {ref} | {'' if ratio is None else f'{ratio:.2f}x'} | {target} | "
                     f"{'' if ok is None else ('yes' if ok else 'NO')} |")
    return "\n".join(lines), all(ok for *_, ok in rows if ok is not None)


def engine_rows(m):
    return [
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="2", help="comma-separated worker counts; the first one gets the table")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--no-build", action="store_true", help="use the binaries already in build/bench")
    parser.add_argument("--only", choices=["engine", "pool", "pipeline"],
                        help="run one part: the engine (executors, orchestrator), the SharedMemoryPool or "
                             "pipelines (bench_pipeline and its Python reference); default: all three")
    parser.add_argument("--pool-stress-seconds", type=float, default=10.0,
                        help="duration of the 8-process pool stress test (default 10)")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    if not args.no_build:
        subprocess.run(["cmake", "--preset", "bench"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "--preset", "bench"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    engine = args.only in (None, "engine")
    results = {w: measure(w, args.repetitions) for w in counts} if engine else {counts[0]: {}}
    if args.only in (None, "pool"):
        results[counts[0]].update(measure_pool(args.repetitions, args.pool_stress_seconds))  # worker count n/a
    if args.only in (None, "pipeline"):
        results[counts[0]].update(measure_pipeline(args.repetitions))  # 1 replica per stage: worker count n/a
    cores = os.cpu_count()
    text, met = table(results[counts[0]])
    print(f"mpaio benchmarks: {counts[0]} workers, {cores} cores, median of {args.repetitions} repetitions\n")
    print(text)
    if engine and len(counts) > 1:
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
