#pragma once
/// @file cpu_monitor.hpp
/// Per-core CPU utilisation from /proc/stat.

#include <cstdint>
#include <vector>

namespace mpaio {

/// Cumulative CPU time of one core, in /proc/stat ticks.
struct CpuTimes {
  std::uint64_t busy = 0;   ///< user + nice + system + irq + softirq + steal
  std::uint64_t total = 0;  ///< busy + idle + iowait
};

/// Reads the cumulative times of every core ("cpuN" lines of /proc/stat). Throws SystemError if it
/// cannot be read.
std::vector<CpuTimes> read_cpu_times();

/// Utilisation of each core between two readings, in percent (0..100).
std::vector<double> cpu_utilisation(const std::vector<CpuTimes>& before, const std::vector<CpuTimes>& after);

}  // namespace mpaio
