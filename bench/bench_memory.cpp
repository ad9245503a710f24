// Zero copy: the private memory of each worker process while it sums an 800 MB array (the data is
// shared, so it should stay small), and the bytes that crossed the channels per chunk besides the
// results. Prints one JSON object.
#include <sys/types.h>

#include <fstream>
#include <iostream>
#include <numeric>
#include <string>

#include <fmt/format.h>

#include "bench_workers.hpp"

namespace {

/// A field of /proc/<pid>/smaps_rollup, in KiB.
long smaps_kib(pid_t pid, const std::string& field) {
  std::ifstream in(fmt::format("/proc/{}/smaps_rollup", pid));
  std::string line;
  long total = 0;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) total += std::stol(line.substr(field.size() + 1));
  }
  return total;
}

/// Reads each worker's private memory from inside its chunk, i.e. while it sums.
struct ProbeWorker : mpaio::Worker<ProbeWorker, std::array<long, 3>> {
  using Worker::Worker;
  static std::array<long, 3> process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range chunk) {
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(chunk)) sum += v;
    const pid_t self = ::getpid();
    return {smaps_kib(self, "Private_Clean") + smaps_kib(self, "Private_Dirty"), smaps_kib(self, "Rss"),
            static_cast<long>(sum & 1)};
  }
  void process_callback(std::array<long, 3> r) {
    max_private_kib = std::max(max_private_kib, r[0]);
    max_rss_kib = std::max(max_rss_kib, r[1]);
  }
  long max_private_kib = 0;
  long max_rss_kib = 0;
};

}  // namespace

int main() {
  const std::size_t workers = bench_workers();
  mpaio::ProcessPoolExecutor pool{{.workers = workers}};
  constexpr std::size_t kSize = 100'000'000;
  auto array = mpaio::SharedArray<std::int64_t>::create({kSize});
  std::iota(array.begin(), array.end(), std::int64_t{1});

  ProbeWorker probe{mpaio::DataIterator::partitions(array.meta(), workers)};
  mpaio::WorkerOrchestrator{pool, {&probe}}.run_blocking();

  // Channel traffic per chunk, measured on a run of many small chunks of the same array.
  const mpaio::ChannelTraffic before = pool.channel_traffic();
  SumWorker sum{mpaio::DataIterator::partitions(array.meta(), 10'000)};
  mpaio::WorkerOrchestrator{pool, {&sum}}.run_blocking();
  const mpaio::ChannelTraffic after = pool.channel_traffic();
  const double chunks = static_cast<double>(after.chunks - before.chunks);
  const double overhead = static_cast<double>((after.task_bytes - before.task_bytes) +
                                              (after.result_bytes - before.result_bytes) -
                                              (after.payload_bytes - before.payload_bytes));
  fmt::print(
      "{{\"array_mib\": {:.0f}, \"worker_private_mib\": {:.1f}, \"worker_rss_mib\": {:.1f}, "
      "\"channel_bytes_per_chunk\": {:.1f}, \"result_bytes_per_chunk\": {:.1f}}}\n",
      static_cast<double>(kSize * sizeof(std::int64_t)) / (1 << 20), probe.max_private_kib / 1024.0,
      probe.max_rss_kib / 1024.0, overhead / chunks,
      static_cast<double>(after.payload_bytes - before.payload_bytes) / chunks);
  return sum.total == static_cast<std::int64_t>(kSize) * (kSize + 1) / 2 ? 0 : 1;
}
