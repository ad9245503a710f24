// SharedMemoryPool example: a producer cuts an image into thousands of small tiles allocated in one pool,
// worker processes attach each tile (a PoolArrayRef, well under a microsecond), compute a half-resolution
// tile allocated in the same pool and return it (PoolArray<float> travels as a transfer token); the caller
// adopts every result. With --named, prints the metadata of tile 0's result for examples/pool_numpy.py and
// keeps it alive for --hold seconds (or, with --wait-stdin, until its standard input is closed).
//
//   pool_tiles --tiles 5000 --workers 2
//   pool_tiles --named --hold 5 | python3 examples/pool_numpy.py
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <iostream>
#include <limits>
#include <thread>
#include <numeric>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "mpaio/mpaio.hpp"

namespace {

constexpr std::size_t kTile = 64;

/// Each chunk is one row of `refs`: the bytes of the PoolArrayRef of one input tile.
struct Downsampler : mpaio::Worker<Downsampler, mpaio::PoolArray<float>> {
  using Worker::Worker;
  /// The pool the tiles are in: created before the executor, so its workers hold it too (by its id).
  using Params = std::uint64_t;
  static mpaio::PoolArray<float> process(mpaio::ArrayView<const std::uint8_t> refs, mpaio::Range rows,
                                         const Params& pool_id) {
    mpaio::SharedMemoryPool& pool = *mpaio::SharedMemoryPool::find(pool_id);
    mpaio::PoolArrayRef ref;
    std::memcpy(&ref, refs.row(rows.start / sizeof ref).data(), sizeof ref);
    auto tile = pool.attach<std::uint8_t>(ref);  // a reference of this worker, dropped on return
    auto out = pool.allocate<float>({kTile / 2, kTile / 2});
    for (std::size_t y = 0; y < kTile / 2; ++y) {
      for (std::size_t x = 0; x < kTile / 2; ++x) {
        const std::uint8_t* p = tile.data() + 2 * y * kTile + 2 * x;
        out[y * (kTile / 2) + x] = (p[0] + p[1] + p[kTile] + p[kTile + 1]) / 4.0f;
      }
    }
    return out;
  }
  void process_callback(mpaio::PoolArray<float> half, mpaio::Range rows) {
    checksum += std::accumulate(half.begin(), half.end(), 0.0);
    results[rows.start / sizeof(mpaio::PoolArrayRef)] = std::move(half);  // in tile order, whatever the arrival
  }
  std::vector<mpaio::PoolArray<float>> results;  // one per tile
  double checksum = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Thousands of small arrays in one SharedMemoryPool, processed by worker processes"};
  std::size_t tiles = 5000;
  std::size_t workers = 2;
  bool named = false;
  double hold = 5;
  bool wait_stdin = false;
  app.add_option("--tiles", tiles, "number of 64x64 tiles");
  app.add_option("--workers", workers, "worker processes");
  app.add_flag("--named", named, "named pool (/dev/shm): print the first result's metadata for numpy");
  app.add_option("--hold", hold, "with --named: seconds to keep the result alive for the numpy script");
  app.add_flag("--wait-stdin", wait_stdin, "with --named: keep the result alive until stdin is closed (not --hold)");
  CLI11_PARSE(app, argc, argv);

  // 1. The pool first, then the executor (its workers inherit the pool).
  auto pool = mpaio::SharedMemoryPool::create({.kind = named ? mpaio::SegmentKind::named : mpaio::SegmentKind::anonymous});
  mpaio::ProcessPoolExecutor executor({.workers = workers});

  // 2. The producer: thousands of tiles, and a table of their references for the workers.
  std::vector<mpaio::PoolArray<std::uint8_t>> inputs;
  auto refs = mpaio::SharedArray<std::uint8_t>::create({tiles, sizeof(mpaio::PoolArrayRef)});
  double expected = 0;
  for (std::size_t i = 0; i < tiles; ++i) {
    auto tile = pool.allocate<std::uint8_t>({kTile, kTile});
    for (std::size_t j = 0; j < tile.size(); ++j) tile[j] = static_cast<std::uint8_t>((i + j) % 251);
    expected += std::accumulate(tile.begin(), tile.end(), 0.0) / 4.0;
    const mpaio::PoolArrayRef ref = tile.ref();
    std::memcpy(refs.view().row(i).data(), &ref, sizeof ref);
    inputs.push_back(std::move(tile));
  }

  // 3. One chunk per tile.
  Downsampler downsampler{mpaio::DataIterator::rows(refs.meta(), 1), pool.id()};
  downsampler.results.resize(tiles);
  mpaio::WorkerOrchestrator orchestrator{executor, {&downsampler}};
  const auto start = std::chrono::steady_clock::now();
  orchestrator.run_blocking();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  inputs.clear();  // the producer's tiles are freed with their last handle

  const auto delivered = static_cast<std::size_t>(std::count_if(downsampler.results.begin(), downsampler.results.end(),
                                                                 [](const auto& half) { return static_cast<bool>(half); }));
  const mpaio::PoolStats s = pool.stats();
  std::fprintf(stderr, "%zu tiles in %.1f ms; checksum %.1f (expected %.1f); pool: %llu arrays, %llu bytes in use, %u segment(s)\n",
               delivered, ms, downsampler.checksum, expected,
               static_cast<unsigned long long>(s.blocks_in_use), static_cast<unsigned long long>(s.bytes_in_use), s.segments);

  if (named && !downsampler.results.empty() && downsampler.results.front()) {
    std::cout << downsampler.results.front().meta().to_json() << '\n' << std::flush;
    if (wait_stdin) {
      std::cin.ignore(std::numeric_limits<std::streamsize>::max());  // until EOF: the reader is done
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(hold));  // time for the numpy script
    }
  }
  downsampler.results.clear();
  return delivered == tiles && downsampler.checksum == expected ? 0 : 1;
}
