// A long scan that a user can stop: each worker process builds a costly lookup table once (static
// init(), reused by every chunk it runs), and each chunk checks its StopToken so that, when the run is
// cancelled (Ctrl-C, or --stop-after-ms), it ends early and its partial count still reaches the caller.
//
//   stoppable_scan --size 400000000 --stop-after-ms 300
#include <array>
#include <cstdint>
#include <iostream>
#include <numeric>
#include <optional>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <mpaio/mpaio.hpp>
#include <spdlog/spdlog.h>

namespace {

/// Counts the elements whose bit pattern has an odd number of set bits, with a 64 Ki-entry table.
struct ParityScan : mpaio::Worker<ParityScan, std::array<std::uint64_t, 2>> {  // {odd elements, elements seen}
  using Worker::Worker;

  // Costly set-up, once per worker process: everything in a process shares the table.
  static void init() {
    for (std::uint32_t i = 0; i < table.size(); ++i) table[i] = static_cast<std::uint8_t>(__builtin_popcount(i) & 1);
    spdlog::info("parity table ready");
  }

  static std::array<std::uint64_t, 2> process(mpaio::ArrayView<const std::uint64_t> data, mpaio::Range chunk,
                                              const mpaio::StopToken& stop) {
    std::uint64_t odd = 0;
    std::size_t i = chunk.start;
    for (; i < chunk.end; ++i) {
      if (i % 65536 == 0 && stop.stop_requested()) break;  // cancelled: return what we have
      const std::uint64_t v = data[i];
      odd += table[(v ^ (v >> 16) ^ (v >> 32) ^ (v >> 48)) & 0xFFFF];
    }
    return {odd, i - chunk.start};
  }

  void process_callback(std::array<std::uint64_t, 2> r) {
    odd += r[0];
    seen += r[1];
  }

  static inline std::array<std::uint8_t, 65536> table{};
  std::uint64_t odd = 0;
  std::uint64_t seen = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t size = 200'000'000;
  int stop_after_ms = 0;
  CLI::App app{"A cancellable scan: partial results of stopped chunks still reach the caller"};
  app.add_option("--size", size, "elements to scan");
  app.add_option("--stop-after-ms", stop_after_ms, "cancel the run after this long (0: only Ctrl-C)");
  CLI11_PARSE(app, argc, argv);

  mpaio::ProcessPoolExecutor pool;
  auto values = mpaio::SharedArray<std::uint64_t>::create({size});
  std::iota(values.begin(), values.end(), std::uint64_t{0});
  ParityScan scan{mpaio::DataIterator::partitions(values.meta(), pool.concurrency())};
  mpaio::WorkerOrchestrator orchestrator{pool, {&scan}, {.cancel_grace = std::chrono::milliseconds(200)}};

  asio::io_context io;
  asio::cancellation_signal cancel;
  asio::signal_set signals(io, SIGINT);
  signals.async_wait([&](std::error_code ec, int) {
    if (!ec) cancel.emit(asio::cancellation_type::terminal);
  });
  asio::steady_timer timer(io);
  if (stop_after_ms > 0) {
    timer.expires_after(std::chrono::milliseconds(stop_after_ms));
    timer.async_wait([&](std::error_code ec) {
      if (!ec) cancel.emit(asio::cancellation_type::terminal);
    });
  }
  bool cancelled = false;
  asio::co_spawn(io, orchestrator.run(), asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, mpaio::RunReport) {
    try {
      if (e) std::rethrow_exception(e);
    } catch (const mpaio::RunCancelled&) {
      cancelled = true;
    }
    signals.cancel();
    timer.cancel();
  }));
  io.run();
  fmt::print("{}: {} of {} elements scanned, {} with odd parity\n", cancelled ? "cancelled" : "complete", scan.seen,
             size, scan.odd);
  return 0;
}
