#pragma once
/// @file run_report.hpp
/// RunReport: what happened in a run: wall time, one record per chunk, CPU utilisation per core.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iosfwd>
#include <string>
#include <vector>

#include "mpaio/range.hpp"

namespace mpaio {

/// One chunk of a run: who ran it, when.
struct ChunkRecord {
  std::size_t worker = 0;          ///< index of the worker in the orchestrator's list (and in worker_types)
  Range range;
  std::uint32_t slot = 0;          ///< which of the executor's workers ran it
  pid_t pid = 0;                   ///< the process that ran it
  std::chrono::nanoseconds start{};  ///< since the start of the run
  std::chrono::nanoseconds end{};
  bool failed = false;
};

/// A chunk that failed for good (after its retries).
struct FailedChunk {
  std::size_t worker = 0;          ///< index of the worker in the orchestrator's list
  Range range;
  std::string message;             ///< the error's what(): worker type, range, slot, pid and cause
  std::exception_ptr error;        ///< the ChunkError (or subclass) itself, to rethrow
};

/// Utilisation of every core at one moment of a run.
struct CpuSample {
  double time_ms = 0;              ///< since the start of the run
  std::vector<double> percent;     ///< per core, 0..100
};

/// How one worker slot spent a run (mpire's "worker insights").
struct SlotInsight {
  std::uint32_t slot = 0;
  std::size_t chunks = 0;            ///< chunk attempts it ran
  std::chrono::nanoseconds busy{};   ///< time inside `process`
  std::chrono::nanoseconds idle{};   ///< wall time minus busy time
  double utilisation = 0;            ///< busy / wall time, in percent
  std::chrono::nanoseconds mean_chunk{};
  std::chrono::nanoseconds max_chunk{};
};

/// Worker insights of a run, computed from its chunk records.
struct Insights {
  std::vector<SlotInsight> slots;    ///< one per slot of the executor, in slot order
  double efficiency = 0;             ///< busy time / (workers x wall time), in percent
};

/// The account of one run.
struct RunReport {
  std::string executor;            ///< the executor's name
  std::size_t concurrency = 0;     ///< its worker count
  std::chrono::nanoseconds wall_time{};
  std::vector<std::string> worker_types;  ///< per worker of the orchestrator
  std::vector<ChunkRecord> chunks;        ///< every attempt, in the order the outcomes landed
  /// Chunks that failed for good, in the order they failed. With ErrorPolicy::fail_fast (see
  /// WorkerOrchestrator::last_report) the first is the error run() threw; others failed while the chunks
  /// in flight were accounted for.
  std::vector<FailedChunk> failures;
  /// Chunks that have neither a result nor a failure because the run stopped early (fail fast,
  /// cancellation): never dispatched, waiting for a retry, or stopped in flight. So every chunk of a run is
  /// delivered, in `failures` or counted here; 0 for a run that returned.
  std::size_t unfinished = 0;
  std::vector<CpuSample> cpu;             ///< when monitor_cpu_usage was on

  /// CPU samples as CSV with the header `time_ms,core_0,core_1,...` (pandas reads it as it is).
  void write_cpu_csv(std::ostream& out) const;
  /// Chunk records as CSV: `worker,worker_type,start,end,slot,pid,start_ms,end_ms,failed`.
  void write_chunks_csv(std::ostream& out) const;
  /// The chunk timeline as Chrome trace JSON (chrome://tracing, ui.perfetto.dev open it as it is): one
  /// track per worker process, one slice per chunk named "<worker type> [start, end)".
  void write_trace_json(std::ostream& out) const;
  /// Per-slot chunks, busy and idle time, utilisation and chunk times; overall efficiency.
  [[nodiscard]] Insights insights() const;
  /// insights() as a table for a terminal.
  [[nodiscard]] std::string format_insights() const;
  /// Draws the chunk timeline as an SVG Gantt chart with gnuplot: a row per worker slot, a bar per
  /// chunk, coloured by worker type. Throws Error if gnuplot (Debian: gnuplot-nox) is missing or fails.
  void write_timeline_svg(const std::string& path) const;
  /// Draws the per-core CPU utilisation as an SVG line chart with gnuplot (same errors).
  void write_cpu_svg(const std::string& path) const;
};

/// Whether gnuplot can be run (the SVG charts need it).
bool gnuplot_available();

}  // namespace mpaio
