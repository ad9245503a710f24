// The seed demo: two shared arrays processed together by one orchestrator on a pool of worker
// processes. AddIntWorker sums int64 1..N; ConcatStrWorker concatenates "foo_0".."foo_99" (stored as
// numpy's <U6) in index order, whatever order the chunks finish in.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
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

#include "seed_workers.hpp"

namespace {

struct Settings {
  std::size_t size = 100'000'000;
  std::size_t workers = 0;
  std::size_t partitions = 0;
  std::string executor = "process";
  std::string cpu_csv;
  std::string plot;
  int sample_ms = 20;
};

std::unique_ptr<mpaio::Executor> make_executor(const Settings& s) {
  if (s.executor == "process") return std::make_unique<mpaio::ProcessPoolExecutor>(mpaio::ProcessPoolOptions{.workers = s.workers});
  if (s.executor == "thread") return std::make_unique<mpaio::ThreadPoolExecutor>(mpaio::ThreadPoolOptions{.workers = s.workers});
  return std::make_unique<mpaio::InlineExecutor>();
}

/// Draws the per-core CPU utilisation in `csv` as an SVG line chart with gnuplot.
bool plot_cpu(const std::string& csv, const std::string& svg, std::size_t cores) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::cerr << "gnuplot is not installed (Debian package gnuplot-nox): no plot drawn, the CSV is in " << csv << '\n';
    return false;
  }
  FILE* gp = ::popen("gnuplot", "w");
  if (gp == nullptr) return false;
  fmt::print(gp,
             "set terminal svg size 900,420 dynamic noenhanced font 'sans,12' background '#ffffff'\n"
             "set output '{}'\n"
             "set datafile separator ','\n"
             "set title 'CPU utilisation per core during the run'\n"
             "set xlabel 'time since the start of the run (ms)'\n"
             "set ylabel 'utilisation (%)'\n"
             "set yrange [0:105]\n"
             "set grid\n"
             "set key outside right\n"
             "plot for [i=2:{}] '{}' using 1:i with linespoints lw 2 pt 7 ps 0.4 title columnheader(i)\n",
             svg, cores + 1, csv);
  return ::pclose(gp) == 0;
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
        {.monitor_cpu_usage = true, .cpu_sample_interval = std::chrono::milliseconds(s.sample_ms)}};
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

    if (!s.cpu_csv.empty() || !s.plot.empty()) {
      const std::string csv = !s.cpu_csv.empty() ? s.cpu_csv : s.plot + ".csv";
      std::ofstream out(csv);
      report.write_cpu_csv(out);
      out.close();
      if (!out) throw std::runtime_error("cannot write " + csv);
      if (!s.cpu_csv.empty()) fmt::print("CPU samples: {}\n", csv);
      if (!s.plot.empty()) {
        const std::size_t cores = report.cpu.empty() ? 0 : report.cpu.front().percent.size();
        if (plot_cpu(csv, s.plot, cores)) fmt::print("CPU plot: {}\n", s.plot);
        if (s.cpu_csv.empty()) std::filesystem::remove(csv);
      }
    }
    return adder.total == expected_sum && text == expected ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "example_runner: " << e.what() << '\n';
    return 1;
  }
}
