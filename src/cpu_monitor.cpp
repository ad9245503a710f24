#include "mpaio/cpu_monitor.hpp"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>

#include "mpaio/error.hpp"

namespace mpaio {

std::vector<CpuTimes> read_cpu_times() {
  std::ifstream stat("/proc/stat");
  if (!stat) throw SystemError("open(path=/proc/stat)", errno != 0 ? errno : ENOENT);
  std::vector<CpuTimes> cores;
  std::string line;
  while (std::getline(stat, line)) {
    // "cpu0 user nice system idle iowait irq softirq steal guest guest_nice"; skip the "cpu " total.
    if (line.size() < 4 || line.compare(0, 3, "cpu") != 0 || line[3] == ' ') continue;
    std::istringstream in(line);
    std::string name;
    std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    in >> name >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    const std::uint64_t busy = user + nice + system + irq + softirq + steal;
    cores.push_back({busy, busy + idle + iowait});
  }
  return cores;
}

std::vector<double> cpu_utilisation(const std::vector<CpuTimes>& before, const std::vector<CpuTimes>& after) {
  std::vector<double> out;
  for (std::size_t i = 0; i < before.size() && i < after.size(); ++i) {
    const std::uint64_t total = after[i].total - before[i].total;
    const std::uint64_t busy = after[i].busy - before[i].busy;
    out.push_back(total == 0 ? 0.0 : 100.0 * static_cast<double>(busy) / static_cast<double>(total));
  }
  return out;
}

}  // namespace mpaio
