// The seed workload: the sum of int64 1..1e8 in shared memory, on the process and thread executors
// (partitions = workers) beside a serial loop and OpenMP over the same memory; and the same array in
// 10,000 chunks beside OpenMP schedule(dynamic, 10000).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <numeric>

#include "bench_workers.hpp"

namespace {

constexpr std::size_t kSize = 100'000'000;
constexpr std::size_t kFineChunks = 10'000;
constexpr std::int64_t kExpected = static_cast<std::int64_t>(kSize) * (kSize + 1) / 2;

struct Setup {
  std::size_t workers = bench_workers();
  // Executors before the array: the pool's fork server is forked while the program is small.
  std::unique_ptr<mpaio::Executor> process = make_executor("process", workers);
  std::unique_ptr<mpaio::Executor> thread = make_executor("thread", workers);
  mpaio::SharedArray<std::int64_t> array = mpaio::SharedArray<std::int64_t>::create({kSize});
  Setup() { std::iota(array.begin(), array.end(), std::int64_t{1}); }
};

Setup& setup() {
  static Setup s;
  return s;
}

void check(benchmark::State& state, std::int64_t sum) {
  if (sum != kExpected) state.SkipWithError("wrong sum");
}

void finish(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kSize * sizeof(std::int64_t)));
  state.counters["workers"] = static_cast<double>(setup().workers);
}

void serial(benchmark::State& state) {
  const std::int64_t* data = setup().array.data();
  for (auto _ : state) {
    std::int64_t sum = 0;
    for (std::size_t i = 0; i < kSize; ++i) sum += data[i];
    benchmark::DoNotOptimize(sum);
    check(state, sum);
  }
  finish(state);
}

void openmp_static(benchmark::State& state) {
  const std::int64_t* data = setup().array.data();
  const int threads = static_cast<int>(setup().workers);
  for (auto _ : state) {
    std::int64_t sum = 0;
#pragma omp parallel for reduction(+ : sum) num_threads(threads) schedule(static)
    for (std::size_t i = 0; i < kSize; ++i) sum += data[i];
    check(state, sum);
  }
  finish(state);
}

void openmp_dynamic(benchmark::State& state) {
  const std::int64_t* data = setup().array.data();
  const int threads = static_cast<int>(setup().workers);
  for (auto _ : state) {
    std::int64_t sum = 0;
#pragma omp parallel for reduction(+ : sum) num_threads(threads) schedule(dynamic, kSize / kFineChunks)
    for (std::size_t i = 0; i < kSize; ++i) sum += data[i];
    check(state, sum);
  }
  finish(state);
}

void orchestrated(benchmark::State& state, mpaio::Executor& executor, std::size_t chunks) {
  SumWorker worker{chunks == 0 ? mpaio::DataIterator::partitions(setup().array.meta(), setup().workers)
                               : mpaio::DataIterator::partitions(setup().array.meta(), chunks)};
  mpaio::WorkerOrchestrator orchestrator{executor, {&worker}};
  orchestrator.run_blocking();  // warm-up: each worker maps the array once and keeps the mapping
  for (auto _ : state) {
    worker.total = 0;
    orchestrator.run_blocking();
    check(state, worker.total);
  }
  finish(state);
}

void process_partitions(benchmark::State& state) { orchestrated(state, *setup().process, 0); }
void thread_partitions(benchmark::State& state) { orchestrated(state, *setup().thread, 0); }
void process_fine(benchmark::State& state) { orchestrated(state, *setup().process, kFineChunks); }
void thread_fine(benchmark::State& state) { orchestrated(state, *setup().thread, kFineChunks); }

}  // namespace

BENCHMARK(serial)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(openmp_static)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(process_partitions)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(thread_partitions)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(openmp_dynamic)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(process_fine)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(thread_fine)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  setup();  // the pools first, then the array, before any OpenMP thread exists
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
