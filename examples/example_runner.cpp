// The seed demo: two shared arrays processed together by one orchestrator on a pool of worker
// processes. AddIntWorker sums int64 1..N; ConcatStrWorker concatenates "foo_0".."foo_99" (stored as
// numpy's <U6) in index order, whatever order the chunks finish in.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <string>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <mpaio/mpaio.hpp>

#include "seed_workers.hpp"

namespace {

struct Settings {
  std::size_t size = 100'000'000;
  std::size_t workers = 0;
  std::size_t partitions = 0;
  std::string executor = "process";
  std::string cpu_csv;
  std::string plot;
  std::string trace;
  std::string timeline;
  bool insights = false;
  std::optional<bool> progress;  // default: when stderr is a terminal
  int sample_ms = 20;
};

std::unique_ptr<mpaio::Executor> make_executor(const Settings& s) {
  if (s.executor == "process") return std::make_unique<mpaio::ProcessPoolExecutor>(mpaio::ProcessPoolOptions{.workers = s.workers});
  if (s.executor == "thread") return std::make_unique<mpaio::ThreadPoolExecutor>(mpaio::ThreadPoolOptions{.workers = s.workers});
  return std::make_unique<mpaio::InlineExecutor>();
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  const CLI::Validator positive(
      [](const std::string& text) -> std::string {
        try {
          std::size_t used = 0;
          const long long value = std::stoll(text, &used);
          if (used == text.size() && value >= 1) return {};
        } catch (const std::exception&) {
        }
        return "must be a whole number of at least 1, got " + text;
      },
      "N>=1");
  CLI::App app{"mpaio seed demo: sum int64 1..N and concatenate 100 strings on a pool of workers"};
  app.add_option("--size", s.size, "number of int64 elements (1..N)")->check(positive);
  app.add_option("--workers", s.workers, "worker processes or threads (default: one per core)")->check(positive);
  app.add_option("--partitions", s.partitions, "chunks of the int64 array (default: the worker count)")->check(positive);
  app.add_option("--executor", s.executor, "process, thread or inline")->check(CLI::IsMember({"process", "thread", "inline"}));
  app.add_option("--cpu-csv", s.cpu_csv, "write per-core CPU utilisation as CSV (time_ms,core_0,...)");
  app.add_option("--plot", s.plot, "draw per-core CPU utilisation as an SVG chart (gnuplot)");
  app.add_option("--sample-ms", s.sample_ms, "CPU sampling interval in milliseconds")->check(positive);
  app.add_option("--trace", s.trace, "write the chunk timeline as Chrome/Perfetto trace JSON");
  app.add_option("--timeline", s.timeline, "draw the chunk timeline as an SVG Gantt chart (gnuplot)");
  app.add_flag("--insights", s.insights, "print per-worker insights (chunks, busy/idle time, utilisation)");
  app.add_flag("--progress,!--no-progress", s.progress, "progress bar on stderr (default: when it is a terminal)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "example_runner: " << e.what() << '\n';
    return 2;
  }
  try {
    if (s.workers == 0) s.workers = mpaio::default_worker_count();
    if (s.partitions == 0) s.partitions = s.workers;
    // The pool first: it forks its fork server before the program grows (see ProcessPoolExecutor).
    std::unique_ptr<mpaio::Executor> executor = make_executor(s);
    // Ctrl-C (or SIGTERM) cancels the run; caught from here on, so it is also handled while we set up.
    asio::io_context io;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::cancellation_signal cancel_run;
    bool interrupted = false;
    signals.async_wait([&](const std::error_code& ec, int) {
      if (ec) return;
      interrupted = true;
      cancel_run.emit(asio::cancellation_type::terminal);
    });
    auto interrupted_exit = [] {
      std::cerr << "example_runner: interrupted\n";
      return 130;
    };

    auto ints = mpaio::SharedArray<std::int64_t>::create({s.size});
    for (std::size_t start = 0; start < s.size; start += std::size_t{1} << 24) {  // filled in slices, so that
      const std::size_t end = std::min(s.size, start + (std::size_t{1} << 24));    // Ctrl-C is seen at once
      std::iota(ints.begin() + start, ints.begin() + end, static_cast<std::int64_t>(start) + 1);
      io.poll();
      if (interrupted) return interrupted_exit();
    }
    std::vector<Str6> strings;
    for (int i = 0; i < 100; ++i) strings.emplace_back("foo_" + std::to_string(i));
    auto strs = mpaio::SharedArray<Str6>::from(strings);

    AddIntWorker adder{mpaio::DataIterator::partitions(ints.meta(), s.partitions)};
    ConcatStrWorker concat{mpaio::DataIterator::chunks(strs.meta(), 10)};
    mpaio::WorkerOrchestrator orchestrator{
        *executor, {&adder, &concat},
        {.monitor_cpu_usage = true,
         .cpu_sample_interval = std::chrono::milliseconds(s.sample_ms),
         .progress = !s.progress ? mpaio::ProgressMode::automatic
                                 : (*s.progress ? mpaio::ProgressMode::always : mpaio::ProgressMode::off)}};
    io.poll();  // a signal that came during the set-up
    if (interrupted) return interrupted_exit();
    std::optional<mpaio::RunReport> finished;
    std::exception_ptr error;
    asio::co_spawn(io, orchestrator.run(),
                   asio::bind_cancellation_slot(cancel_run.slot(), [&](std::exception_ptr e, mpaio::RunReport r) {
                     error = e;
                     if (!e) finished = std::move(r);
                     signals.cancel();
                   }));
    io.run();
    if (interrupted) return interrupted_exit();
    if (error) std::rethrow_exception(error);
    const mpaio::RunReport& report = *finished;

    const std::string text = concat.result();
    std::string expected;
    for (const Str6& x : strings) expected += x.str();
    const auto n = static_cast<std::int64_t>(s.size);
    const std::int64_t expected_sum = n % 2 == 0 ? n / 2 * (n + 1) : (n + 1) / 2 * n;
    fmt::print("executor: {}, workers: {}\n", report.executor, report.concurrency);
    fmt::print("sum of 1..{}: {} ({})\n", s.size, adder.total, adder.total == expected_sum ? "correct" : "WRONG");
    fmt::print("concatenation: {} characters, \"{}\" ... \"{}\" ({})\n", text.size(), text.substr(0, 20),
               text.substr(text.size() - std::min<std::size_t>(20, text.size())), text == expected ? "correct" : "WRONG");
    fmt::print("wall time: {:.1f} ms, {} chunks\n", std::chrono::duration<double, std::milli>(report.wall_time).count(),
               report.chunks.size());

    if (s.insights) fmt::print("{}", report.format_insights());
    auto write_file = [](const std::string& path, const auto& write) {
      std::ofstream out(path);
      write(out);
      out.close();
      if (!out) throw std::runtime_error("cannot write " + path);
    };
    if (!s.cpu_csv.empty()) {
      write_file(s.cpu_csv, [&](std::ostream& out) { report.write_cpu_csv(out); });
      fmt::print("CPU samples: {}\n", s.cpu_csv);
    }
    if (!s.trace.empty()) {
      write_file(s.trace, [&](std::ostream& out) { report.write_trace_json(out); });
      fmt::print("chunk trace (open in ui.perfetto.dev or chrome://tracing): {}\n", s.trace);
    }
    const bool can_draw = (s.plot.empty() && s.timeline.empty()) || mpaio::gnuplot_available();
    if (!can_draw) {
      std::cerr << "example_runner: gnuplot is not installed (Debian package gnuplot-nox): no chart drawn"
                << (s.cpu_csv.empty() ? "; --cpu-csv FILE still writes the CPU samples" : "") << '\n';
    }
    if (can_draw && !s.plot.empty()) {
      report.write_cpu_svg(s.plot);
      fmt::print("CPU plot: {}\n", s.plot);
    }
    if (can_draw && !s.timeline.empty()) {
      report.write_timeline_svg(s.timeline);
      fmt::print("chunk timeline: {}\n", s.timeline);
    }
    return adder.total == expected_sum && text == expected ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "example_runner: " << e.what() << '\n';
    return 1;
  }
}
