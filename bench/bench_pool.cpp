// SharedMemoryPool against the segment-per-array path (SharedArray::create), in one run:
//   BM_SegmentPerArray_AllocFree / BM_Pool_AllocFree            4 KiB array: allocate + free
//   BM_SegmentPerArray_AllocWriteFree / BM_Pool_AllocWriteFree  ... and write every byte
//   BM_Pool_AllocFree_Live/10 vs /10000                         allocation with 10 vs 10,000 live blocks
//   BM_Pool_CrossProcessAttachDetach                            attach + detach in another process (median)
//   BM_Pool_Stress8Processes                                    8 processes allocating and freeing random
//       sizes for MPAIO_POOL_STRESS_SECONDS (default 10) seconds: deadlock watchdog, failed allocations
//       while free space >= 2x the request (must be 0), latency percentiles up to p99.9.
// Medians: run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true. bench/compare.py runs
// the timed ones that way (--benchmark_filter=-Stress) and the stress test once, and prints the table.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "mpaio/shared_array.hpp"
#include "mpaio/shared_memory_pool.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t k4KiB = 4096;

mpaio::SharedMemoryPool& bench_pool() {
  static auto pool = mpaio::SharedMemoryPool::create({.segment_size = std::size_t{256} << 20, .max_segments = 8});
  return pool;
}

void BM_SegmentPerArray_AllocFree(benchmark::State& state) {
  for (auto _ : state) {
    auto a = mpaio::SharedArray<std::uint8_t>::create({k4KiB});
    benchmark::DoNotOptimize(a.data());
  }
}
BENCHMARK(BM_SegmentPerArray_AllocFree);

void BM_Pool_AllocFree(benchmark::State& state) {
  auto& pool = bench_pool();
  for (auto _ : state) {
    auto a = pool.allocate<std::uint8_t>({k4KiB});
    benchmark::DoNotOptimize(a.data());
  }
}
BENCHMARK(BM_Pool_AllocFree);

void BM_SegmentPerArray_AllocWriteFree(benchmark::State& state) {
  for (auto _ : state) {
    auto a = mpaio::SharedArray<std::uint8_t>::create({k4KiB});
    std::memset(a.data(), 1, k4KiB);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_SegmentPerArray_AllocWriteFree);

void BM_Pool_AllocWriteFree(benchmark::State& state) {
  auto& pool = bench_pool();
  for (auto _ : state) {
    auto a = pool.allocate<std::uint8_t>({k4KiB});
    std::memset(a.data(), 1, k4KiB);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Pool_AllocWriteFree);

void BM_Pool_AllocFree_Live(benchmark::State& state) {
  auto& pool = bench_pool();
  std::mt19937 rng(42);
  std::vector<mpaio::PoolArray<std::uint8_t>> live;
  for (std::int64_t i = 0; i < state.range(0); ++i) live.push_back(pool.allocate<std::uint8_t>({64 + rng() % 16'384}));
  std::size_t i = 0;
  for (auto _ : state) {
    auto a = pool.allocate<std::uint8_t>({64 + (i++ * 7919) % 16'384});  // mixed sizes: size classes and TLSF
    benchmark::DoNotOptimize(a.data());
  }
}
BENCHMARK(BM_Pool_AllocFree_Live)->Arg(10)->Arg(10'000);

/// Median and tail of `samples` (ns).
struct Tail {
  double p50, p99, p999;
};
Tail tail_of(std::vector<double>& samples) {
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[std::min(samples.size() - 1, static_cast<std::size_t>(q * samples.size()))]; };
  return {at(0.5), at(0.99), at(0.999)};
}

void BM_Pool_CrossProcessAttachDetach(benchmark::State& state) {
  auto& pool = bench_pool();
  auto array = pool.allocate<float>({32, 32});
  const mpaio::PoolArrayRef ref = array.ref();
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  const std::int64_t n = 200'000;
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    (void)pool.attach<float>(ref);  // registers this process once
    std::vector<double> samples;
    samples.reserve(n);
    const auto start = Clock::now();
    for (std::int64_t i = 0; i < n; ++i) {
      const auto t0 = Clock::now();
      { auto a = pool.attach<float>(ref); benchmark::DoNotOptimize(a.data()); }
      samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
    const double total = std::chrono::duration<double>(Clock::now() - start).count();
    const Tail t = tail_of(samples);
    const double out[4] = {total, t.p50, t.p99, t.p999};
    if (::write(fds[1], out, sizeof out) != sizeof out) ::_exit(1);
    ::_exit(0);
  }
  ::close(fds[1]);
  double in[4] = {};
  if (::read(fds[0], in, sizeof in) != sizeof in) state.SkipWithError("child failed");
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  for (auto _ : state) state.SetIterationTime(in[0] / static_cast<double>(n));
  state.counters["median_ns"] = in[1];
  state.counters["p99_ns"] = in[2];
  state.counters["p999_ns"] = in[3];
  pool.reclaim_dead();
}
BENCHMARK(BM_Pool_CrossProcessAttachDetach)->UseManualTime()->Iterations(1);

void BM_Pool_Stress8Processes(benchmark::State& state) {
  const char* env = std::getenv("MPAIO_POOL_STRESS_SECONDS");
  const double seconds = env != nullptr ? std::atof(env) : 10.0;
  constexpr int kProcesses = 8;
  auto pool = mpaio::SharedMemoryPool::create({.segment_size = std::size_t{16} << 20, .max_segments = 4});
  struct Report {
    double p50, p99, p999, max;
    std::uint64_t ops, failed_with_room, failed;
    char first_failure[256];  // the message of the first failed allocation, to say why (one pipe write)
  };
  for (auto _ : state) {
    int fds[2];
    if (::pipe(fds) != 0) std::abort();
    std::vector<pid_t> children;
    for (int p = 0; p < kProcesses; ++p) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(fds[0]);
        std::mt19937_64 rng(static_cast<std::uint64_t>(::getpid()));
        std::vector<mpaio::PoolArray<std::uint8_t>> live;
        std::vector<double> samples;
        samples.reserve(1 << 22);
        Report r{};
        const auto end = Clock::now() + std::chrono::duration<double>(seconds);
        while (Clock::now() < end) {
          if (live.size() < 128 && (live.empty() || rng() % 2 == 0)) {
            // Mostly small arrays, some up to 256 KiB.
            const std::size_t n = rng() % 8 == 0 ? 4096 + rng() % (256 << 10) : 1 + rng() % 4096;
            const auto t0 = Clock::now();
            try {
              live.push_back(pool.allocate<std::uint8_t>({n}));
              if (samples.size() < samples.capacity()) {
                samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
              }
              live.back()[0] = 1;
            } catch (const mpaio::PoolExhausted& e) {
              if (r.failed++ == 0) std::snprintf(r.first_failure, sizeof r.first_failure, "%s", e.what());
              if (e.free_bytes() >= 2 * n) ++r.failed_with_room;
            }
            ++r.ops;
          } else {
            std::swap(live[rng() % live.size()], live.back());
            live.pop_back();
          }
        }
        live.clear();
        const Tail t = tail_of(samples);
        r.p50 = t.p50;
        r.p99 = t.p99;
        r.p999 = t.p999;
        r.max = samples.empty() ? 0 : samples.back();
        if (::write(fds[1], &r, sizeof r) != sizeof r) ::_exit(1);
        ::_exit(0);
      }
      children.push_back(pid);
    }
    ::close(fds[1]);
    Report total{};
    int reports = 0;
    // Deadlock watchdog: every process must report shortly after the deadline, or all are killed.
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds) + std::chrono::seconds(30);
    while (reports < kProcesses) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd ready{fds[0], POLLIN, 0};
      const int rc = ::poll(&ready, 1, static_cast<int>(left));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) break;
      Report r{};
      if (::read(fds[0], &r, sizeof r) != sizeof r) break;  // one write of a few bytes: atomic in a pipe
      ++reports;
      total.ops += r.ops;
      total.failed += r.failed;
      total.failed_with_room += r.failed_with_room;
      total.p50 = std::max(total.p50, r.p50);  // the worst process's percentiles
      total.p99 = std::max(total.p99, r.p99);
      total.p999 = std::max(total.p999, r.p999);
      total.max = std::max(total.max, r.max);
      if (r.failed != 0) std::fprintf(stderr, "stress: %s\n", r.first_failure);
    }
    ::close(fds[0]);
    const bool hung = reports != kProcesses;
    for (pid_t pid : children) {
      if (hung) ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (hung) state.SkipWithError("a stress process hung or failed (deadlock?)");
    state.counters["allocations"] = static_cast<double>(total.ops);
    state.counters["failed"] = static_cast<double>(total.failed);
    state.counters["failed_with_2x_free"] = static_cast<double>(total.failed_with_room);
    state.counters["p50_ns"] = total.p50;
    state.counters["p99_ns"] = total.p99;
    state.counters["p999_ns"] = total.p999;
    state.counters["max_ns"] = total.max;
  }
  pool.reclaim_dead();
  pool.check_invariants();
  state.counters["bytes_in_use_after"] = static_cast<double>(pool.stats().bytes_in_use);
}
BENCHMARK(BM_Pool_Stress8Processes)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
