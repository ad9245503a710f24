#pragma once
/// @file pipeline_options.hpp
/// PipelineOptions: how a pipeline admits items, orders results and treats failures.

#include <chrono>
#include <cstddef>

#include "mpaio/worker_orchestrator.hpp"

namespace mpaio {

/// The order in which a pipeline hands back results.
enum class ResultOrder {
  input,       ///< the order items were pushed (a result waits for every earlier item to end)
  completion,  ///< as items end
};

struct PipelineOptions {
  /// Items admitted and not yet handed back, at most: push() waits beyond. Inner stages never wait for
  /// each other (every item already admitted can always move on), so no shape of graph can deadlock, and
  /// memory stays bounded by this many items.
  std::size_t max_in_flight = 8;
  ResultOrder order = ResultOrder::input;
  /// collect (default): a failed item comes back as a PipelineResult holding its ItemFailure, and the
  /// others go on. fail_fast: the first failure is thrown by pull() as ItemError and the pipeline is
  /// cancelled.
  ErrorPolicy on_error = ErrorPolicy::collect;
  /// Largest encoded value on an edge (a pool array counts as its reference, about 100 bytes).
  std::size_t max_item_bytes = std::size_t{1} << 20;
  /// Items a replica holds at once: the one it handles and those queued behind, so that it never waits
  /// for the caller between two items, and the caller handles its answers in batches. 0 (default): the
  /// stage's share of max_in_flight, between 2 and 16.
  unsigned replica_queue = 0;
  /// How long an idle replica spins before it sleeps (lower latency, more CPU).
  std::chrono::microseconds replica_spin{50};
  /// How long a replica may hold the results of short items (shorter than this) while it has more items
  /// queued, so that the caller wakes once per batch rather than once per item (0: never hold).
  std::chrono::microseconds max_result_delay{200};
  /// close() and destruction: how long stage objects get to be destroyed before their processes are killed.
  std::chrono::milliseconds shutdown_grace{2000};
  /// cancel(): how long the items being handled get to see their StopToken before the processes are killed.
  std::chrono::milliseconds cancel_grace{100};
  /// After a timeout, how long the replica has between SIGTERM and SIGKILL.
  std::chrono::milliseconds timeout_grace{1000};
  /// How long the fork server may take to start a process.
  std::chrono::milliseconds spawn_timeout{10'000};
  /// Record every item's time in every stage, for write_trace_json().
  bool trace = false;
};

}  // namespace mpaio
