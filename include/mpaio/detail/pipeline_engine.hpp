#pragma once
// The engine of a pipeline, types erased: it starts the stages' processes, admits items against the
// in-flight limit, routes each value from the stage that made it to the stages that take it (joining by
// item id), retries and fails items, and hands results back in the order asked for. Pipeline<In, Out> is
// its typed face.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string_view>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "mpaio/detail/pipeline_spec.hpp"
#include "mpaio/pipeline_options.hpp"
#include "mpaio/pipeline_result.hpp"

namespace mpaio::detail {

/// One item's end: the output's value, or its failure.
struct EngineResult {
  std::uint64_t item = 0;
  HeldValue value;
  std::optional<ItemFailure> failure;
};

class PipelineEngine {
 public:
  /// Checks the graph and the options (InvalidArgument), then starts every stage's processes on `loop`.
  PipelineEngine(PipelineSpec spec, PipelineOptions options, const asio::any_io_executor& loop);
  ~PipelineEngine();
  PipelineEngine(const PipelineEngine&) = delete;
  PipelineEngine& operator=(const PipelineEngine&) = delete;

  asio::awaitable<std::uint64_t> push(HeldValue input);
  asio::awaitable<std::optional<EngineResult>> pull();
  void on_result(std::function<void(EngineResult)> handler);
  void close();
  void cancel();

  [[nodiscard]] std::size_t in_flight() const noexcept;
  [[nodiscard]] std::uint64_t unfinished() const noexcept;
  [[nodiscard]] std::vector<StageStats> stats() const;
  [[nodiscard]] pid_t replica_pid(std::string_view stage, unsigned replica) const;
  [[nodiscard]] pid_t fork_server_pid() const noexcept;
  void write_trace_json(std::ostream& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpaio::detail
