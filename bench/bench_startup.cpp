// Start-up: create a process pool, run one empty chunk, shut the pool down (all processes reaped).
#include <benchmark/benchmark.h>

#include "bench_workers.hpp"

namespace {

void startup(benchmark::State& state) {
  auto array = mpaio::SharedArray<std::int64_t>::create({1});
  const std::size_t workers = bench_workers();
  for (auto _ : state) {
    mpaio::ProcessPoolExecutor pool{{.workers = workers}};
    EmptyWorker worker{mpaio::DataIterator::chunks(array.meta(), 1)};
    mpaio::WorkerOrchestrator orchestrator{pool, {&worker}};
    orchestrator.run_blocking();
    if (worker.done != 1) state.SkipWithError("the chunk did not run");
  }
  state.counters["workers"] = static_cast<double>(workers);
}

}  // namespace

BENCHMARK(startup)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
