#include "mpaio/run_report.hpp"

#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

namespace mpaio {

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
               c.pid, std::chrono::duration<double, std::milli>(c.start).count(),
               std::chrono::duration<double, std::milli>(c.end).count(), c.failed ? 1 : 0);
  }
}

}  // namespace mpaio
