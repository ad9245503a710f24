// Dispatch: empty chunks (1-element ranges, process returns 0) through WorkerOrchestrator, in chunks per
// second, on each executor. The executors are created once, before the measured runs.
#include <benchmark/benchmark.h>

#include "bench_workers.hpp"

namespace {

constexpr std::size_t kChunks = 100'000;

void dispatch(benchmark::State& state, std::string_view kind) {
  auto executor = make_executor(kind, bench_workers());
  auto array = mpaio::SharedArray<std::int64_t>::create({kChunks});
  EmptyWorker worker{mpaio::DataIterator::chunks(array.meta(), 1)};
  mpaio::WorkerOrchestrator orchestrator{*executor, {&worker}};
  orchestrator.run_blocking();  // warm-up: workers attached, pages touched
  for (auto _ : state) {
    worker.done = 0;
    orchestrator.run_blocking();
    if (worker.done != static_cast<std::int64_t>(kChunks)) state.SkipWithError("lost chunks");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kChunks));
  state.counters["workers"] = static_cast<double>(executor->concurrency());
}

}  // namespace

BENCHMARK_CAPTURE(dispatch, inline, "inline")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(dispatch, thread, "thread")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(dispatch, process, "process")->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
