#include "mpaio/run_report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "mpaio/error.hpp"

namespace mpaio {

namespace {

double to_ms(std::chrono::nanoseconds t) { return std::chrono::duration<double, std::milli>(t).count(); }

/// A file in the temporary directory, removed when this goes out of scope.
struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& stem)
      : path(std::filesystem::temp_directory_path() / fmt::format("{}-{}-{}.dat", stem, ::getpid(), rand_suffix())) {}
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
  static unsigned rand_suffix() {
    static unsigned counter = 0;
    return ++counter;
  }
};

/// Runs gnuplot on `script`; throws Error when it is missing or fails.
void run_gnuplot(const std::string& script, const std::string& output) {
  if (!gnuplot_available()) {
    throw Error(fmt::format("cannot draw {}: gnuplot is not installed (Debian package gnuplot-nox)", output));
  }
  FILE* gp = ::popen("gnuplot 2>&1", "w");
  if (gp == nullptr) throw SystemError(fmt::format("popen(command=gnuplot, output={})", output), errno);
  std::fwrite(script.data(), 1, script.size(), gp);
  if (::pclose(gp) != 0) throw Error(fmt::format("gnuplot failed to draw {}", output));
}

constexpr const char* kSvgTerminal = "set terminal svg size 1000,{} dynamic noenhanced font 'sans,12' background '#ffffff'\n";

}  // namespace

bool gnuplot_available() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

void RunReport::write_cpu_csv(std::ostream& out) const {
  const std::size_t cores = cpu.empty() ? 0 : cpu.front().percent.size();
  out << "time_ms";
  for (std::size_t i = 0; i < cores; ++i) out << ",core_" << i;
  out << '\n';
  for (const CpuSample& s : cpu) {
    fmt::print(out, "{:.1f}", s.time_ms);
    for (std::size_t i = 0; i < cores; ++i) fmt::print(out, ",{:.1f}", i < s.percent.size() ? s.percent[i] : 0.0);
    out << '\n';
  }
}

void RunReport::write_chunks_csv(std::ostream& out) const {
  out << "worker,worker_type,start,end,slot,pid,start_ms,end_ms,failed\n";
  for (const ChunkRecord& c : chunks) {
    const std::string& type = c.worker < worker_types.size() ? worker_types[c.worker] : std::string();
    fmt::print(out, "{},\"{}\",{},{},{},{},{:.3f},{:.3f},{}\n", c.worker, type, c.range.start, c.range.end, c.slot,
               c.pid, to_ms(c.start), to_ms(c.end), c.failed ? 1 : 0);
  }
}

void RunReport::write_trace_json(std::ostream& out) const {
  nlohmann::json events = nlohmann::json::array();
  std::map<pid_t, std::uint32_t> processes;  // one track per worker process
  for (const ChunkRecord& c : chunks) {
    processes.emplace(c.pid, c.slot);
    const std::string& type = c.worker < worker_types.size() ? worker_types[c.worker] : std::string("?");
    events.push_back({
        {"name", fmt::format("{} [{}, {})", type, c.range.start, c.range.end)},
        {"cat", c.failed ? "failed chunk" : "chunk"},
        {"ph", "X"},
        {"ts", std::chrono::duration<double, std::micro>(c.start).count()},
        {"dur", std::chrono::duration<double, std::micro>(c.end - c.start).count()},
        {"pid", c.pid},
        {"tid", c.pid},
        {"args", {{"worker", type}, {"slot", c.slot}, {"start", c.range.start}, {"end", c.range.end},
                  {"failed", c.failed}}},
    });
  }
  for (const auto& [pid, slot] : processes) {
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"tid", pid},
                      {"args", {{"name", fmt::format("{} worker {} (pid {})", executor, slot, pid)}}}});
    events.push_back({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", pid}, {"tid", pid},
                      {"args", {{"sort_index", slot}}}});
  }
  const nlohmann::json trace{{"traceEvents", events}, {"displayTimeUnit", "ms"},
                             {"otherData", {{"executor", executor}, {"wall_time_ms", to_ms(wall_time)}}}};
  out << trace.dump() << '\n';
}

Insights RunReport::insights() const {
  Insights result;
  std::uint32_t slots = static_cast<std::uint32_t>(concurrency);
  for (const ChunkRecord& c : chunks) slots = std::max(slots, c.slot + 1);
  result.slots.resize(slots);
  for (std::uint32_t i = 0; i < slots; ++i) result.slots[i].slot = i;
  for (const ChunkRecord& c : chunks) {
    SlotInsight& s = result.slots[c.slot];
    const auto took = c.end - c.start;
    ++s.chunks;
    s.busy += took;
    s.max_chunk = std::max(s.max_chunk, took);
  }
  std::chrono::nanoseconds busy{};
  for (SlotInsight& s : result.slots) {
    s.idle = std::max(std::chrono::nanoseconds{}, wall_time - s.busy);
    s.utilisation = wall_time.count() > 0 ? 100.0 * static_cast<double>(s.busy.count()) / static_cast<double>(wall_time.count()) : 0;
    s.mean_chunk = s.chunks > 0 ? s.busy / static_cast<std::int64_t>(s.chunks) : std::chrono::nanoseconds{};
    busy += s.busy;
  }
  const double capacity = static_cast<double>(wall_time.count()) * static_cast<double>(std::max<std::uint32_t>(slots, 1));
  result.efficiency = capacity > 0 ? 100.0 * static_cast<double>(busy.count()) / capacity : 0;
  return result;
}

std::string RunReport::format_insights() const {
  const Insights in = insights();
  std::string out = fmt::format("{:>6} {:>8} {:>11} {:>11} {:>8} {:>12} {:>12}\n", "worker", "chunks", "busy ms",
                                "idle ms", "util %", "mean ms", "max ms");
  for (const SlotInsight& s : in.slots) {
    out += fmt::format("{:>6} {:>8} {:>11.2f} {:>11.2f} {:>8.1f} {:>12.4f} {:>12.4f}\n", s.slot, s.chunks,
                       to_ms(s.busy), to_ms(s.idle), s.utilisation, to_ms(s.mean_chunk), to_ms(s.max_chunk));
  }
  out += fmt::format("efficiency: {:.1f}% of {} workers x {:.2f} ms\n", in.efficiency, in.slots.size(),
                     to_ms(wall_time));
  return out;
}

void RunReport::write_timeline_svg(const std::string& path) const {
  TempFile data("mpaio-timeline");
  std::uint32_t slots = static_cast<std::uint32_t>(std::max<std::size_t>(concurrency, 1));
  {
    std::ofstream out(data.path);
    // One block per worker type, so that each gets its own colour and legend entry.
    for (std::size_t w = 0; w < worker_types.size(); ++w) {
      out << "# " << worker_types[w] << '\n';
      for (const ChunkRecord& c : chunks) {
        if (c.worker != w) continue;
        slots = std::max(slots, c.slot + 1);
        fmt::print(out, "{:.4f} {:.4f} {}\n", to_ms(c.start), to_ms(c.end), c.slot);
      }
      out << "\n\n";
    }
  }
  std::string script = fmt::format(kSvgTerminal, 160 + 40 * slots);
  script += fmt::format(
      "set output '{}'\nset title 'Chunk timeline ({} executor, {:.1f} ms)'\n"
      "set xlabel 'time since the start of the run (ms)'\nset ylabel 'worker slot'\n"
      "set yrange [-0.6:{}]\nset ytics 1\nset grid xtics\nset key outside right\nset style fill solid 0.85 border -1\n",
      path, executor, to_ms(wall_time), slots - 0.4);
  script += "plot ";
  for (std::size_t w = 0; w < worker_types.size(); ++w) {
    script += fmt::format("{}'{}' index {} using (($1+$2)/2):3:1:2:($3-0.35):($3+0.35) with boxxyerror lc {} title '{}'",
                          w == 0 ? "" : ", ", data.path.string(), w, w + 1, worker_types[w]);
  }
  if (worker_types.empty()) script += "NaN notitle";
  script += '\n';
  run_gnuplot(script, path);
}

void RunReport::write_cpu_svg(const std::string& path) const {
  TempFile data("mpaio-cpu");
  {
    std::ofstream out(data.path);
    write_cpu_csv(out);
  }
  const std::size_t cores = cpu.empty() ? 0 : cpu.front().percent.size();
  std::string script = fmt::format(kSvgTerminal, 420);
  script += fmt::format(
      "set output '{}'\nset datafile separator ','\nset title 'CPU utilisation per core ({} executor)'\n"
      "set xlabel 'time since the start of the run (ms)'\nset ylabel 'utilisation (%)'\nset yrange [0:105]\n"
      "set grid\nset key outside right\n",
      path, executor);
  script += cores == 0 ? "plot NaN notitle\n"
                       : fmt::format("plot for [i=2:{}] '{}' using 1:i with linespoints lw 2 pt 7 ps 0.4 "
                                     "title columnheader(i)\n",
                                     cores + 1, data.path.string());
  run_gnuplot(script, path);
}

}  // namespace mpaio
