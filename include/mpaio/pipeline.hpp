#pragma once
/// @file pipeline.hpp
/// Pipeline<In, Out>: a stream of items through a graph of stateful stages, each stage in processes of its
/// own; PipelineBuilder: how the graph is made, with its edges type-checked at compile time.
///
///     mpaio::PipelineBuilder<Frame> graph;
///     auto frame = graph.input();
///     auto boxes = graph.add<Detector>({.name = "detector"}, frame);
///     auto sizes = graph.add<SizeEstimator>({.replicas = 2}, frame, boxes);   // fan-out of frame and boxes
///     auto kinds = graph.add<Classifier>({}, classifier_config, frame, boxes);
///     auto stats = graph.add<Aggregator>({}, sizes, kinds);                   // joins both by item id
///     auto pipeline = graph.build(stats, io.get_executor(), {.max_in_flight = 4});
///     co_await pipeline.push(std::move(frame_array));   // waits while 4 items are in flight
///     auto result = co_await pipeline.pull();            // a PipelineResult<Stats>, in input order

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include "mpaio/detail/pipeline_engine.hpp"
#include "mpaio/detail/pipeline_spec.hpp"
#include "mpaio/pipeline_options.hpp"
#include "mpaio/pipeline_result.hpp"
#include "mpaio/stage.hpp"

namespace mpaio {

/// An edge of a graph being built: the values of type T that the input or a stage produces. Use it as an
/// input of as many stages as need it (fan-out).
template <class T>
class Port {
 public:
  using value_type = T;
  /// A port of no graph (to assign one later); builders refuse it.
  Port() = default;

 private:
  template <class>
  friend class PipelineBuilder;
  Port(const void* graph, std::uint32_t id) : graph_(graph), id_(id) {}
  const void* graph_ = nullptr;
  std::uint32_t id_ = 0;
};

template <class In, class Out>
class Pipeline;

/// Builds the graph of a pipeline whose items are of type In. Stages can only take ports that exist, so
/// a graph cannot have a cycle; build() rejects a stage whose output nothing takes.
template <class In>
class PipelineBuilder {
  static_assert(detail::PortValue<In>, "pipeline items must be Encodable or PoolArrays");

 public:
  PipelineBuilder() : spec_(std::make_shared<detail::PipelineSpec>()) {
    spec_->ports.push_back({detail::demangle(typeid(In).name()), -1, nullptr});
  }

  /// The pipeline's input: what push() takes.
  [[nodiscard]] Port<In> input() const { return Port<In>(spec_.get(), 0); }

  /// Adds a stage of type S, built in each of its processes from `config`, fed by `inputs` (one per
  /// argument of S::process, of the same types: a mismatch does not compile).
  template <class S, class... T>
    requires detail::HasConfig<S>
  Port<typename detail::StageTraits<S>::output> add(StageOptions options, const typename S::Config& config,
                                                    Port<T>... inputs) {
    static_assert(Encodable<typename S::Config>, "a stage's Config must be Encodable: it travels to its processes");
    std::vector<std::byte> encoded;
    Codec<typename S::Config>::encode(config, encoded);
    return add_stage<S, T...>(std::move(options), std::move(encoded), inputs...);
  }
  /// Adds a stage of type S without a Config (default-constructed), or with a default-constructed Config.
  template <class S, class... T>
  Port<typename detail::StageTraits<S>::output> add(StageOptions options, Port<T>... inputs) {
    if constexpr (detail::HasConfig<S>) {
      return add<S>(std::move(options), typename S::Config{}, inputs...);
    } else {
      return add_stage<S, T...>(std::move(options), {}, inputs...);
    }
  }

  /// Starts the pipeline whose results are the values of `output`: checks the graph (InvalidArgument),
  /// forks its fork server and starts every stage's processes. Results reach `loop`.
  template <class Out>
  Pipeline<In, Out> build(Port<Out> output, const asio::any_io_executor& loop, PipelineOptions options = {}) const {
    check_port(output, "build");
    detail::PipelineSpec spec = *spec_;
    spec.output = output.id_;
    return Pipeline<In, Out>(std::make_unique<detail::PipelineEngine>(std::move(spec), std::move(options), loop));
  }

  /// For a program without an event loop: runs every input through the pipeline on a loop of its own and
  /// returns one result per input (in input order unless options.order says otherwise).
  template <class Out>
  std::vector<PipelineResult<Out>> run(Port<Out> output, std::vector<In> inputs, PipelineOptions options = {}) const {
    asio::io_context io;
    Pipeline<In, Out> pipeline = build(output, io.get_executor(), std::move(options));
    std::vector<PipelineResult<Out>> results;
    results.reserve(inputs.size());
    std::exception_ptr failed;
    // Either side failing (an item push() refused, fail_fast) cancels: the other must not wait for ever.
    auto on_end = [&](std::exception_ptr e) {
      if (!e) return;
      if (!failed) failed = e;
      pipeline.cancel();
    };
    asio::co_spawn(io, pipeline.feed(std::move(inputs)), on_end);
    asio::co_spawn(io, pipeline.collect(results), on_end);
    io.run();
    if (failed) std::rethrow_exception(failed);
    return results;
  }

 private:
  template <class S, class... T>
  Port<typename detail::StageTraits<S>::output> add_stage(StageOptions options, std::vector<std::byte> config,
                                                          Port<T>... inputs) {
    using Traits = detail::StageTraits<S>;
    using Out = typename Traits::output;
    static_assert(std::is_base_of_v<Stage<S>, S>, "a stage type derives from mpaio::Stage<itself>");
    static_assert(Traits::arity > 0, "a stage's process takes at least one input");
    static_assert(sizeof...(T) == Traits::arity, "the stage is given a different number of inputs than its process takes");
    static_assert(std::is_same_v<std::tuple<T...>, typename Traits::inputs>,
                  "an input port carries a different type than the stage's process takes there");
    static_assert(detail::PortValue<Out>, "a stage's result must be Encodable or a PoolArray");
    (check_port(inputs, "add"), ...);
    detail::StageSpec stage;
    stage.name = options.name.empty() ? Stage<S>::type_name() : options.name;
    stage.options = std::move(options);
    stage.options.name = stage.name;
    stage.inputs = {inputs.id_...};
    stage.config = std::move(config);
    stage.construct = &detail::TypedStage<S>::construct;
    stage.output = static_cast<std::uint32_t>(spec_->ports.size());
    spec_->ports.push_back({detail::demangle(typeid(Out).name()), static_cast<int>(spec_->stages.size()),
                            &detail::PortWire<Out>::hold_result});
    spec_->stages.push_back(std::move(stage));
    return Port<Out>(spec_.get(), spec_->stages.back().output);
  }

  template <class T>
  void check_port(const Port<T>& port, const char* what) const {
    if (port.graph_ != spec_.get() || port.id_ >= spec_->ports.size()) {
      throw InvalidArgument(std::string("PipelineBuilder::") + what + ": the port belongs to another PipelineBuilder");
    }
  }

  std::shared_ptr<detail::PipelineSpec> spec_;
};

/// A running pipeline: push items, pull results. Every pushed item ends exactly once: its result (value or
/// failure) is handed back, or, when the pipeline is cancelled first, it is counted in unfinished(). Use it
/// from coroutines on the loop given to build(); it must outlive them. While it is open it watches its
/// processes on that loop, so the loop's run() returns only once it is closed (or cancelled), its items
/// have ended and its stage processes have exited. Destroying it stops the stages (their objects are
/// destroyed within PipelineOptions::shutdown_grace) and leaves no process behind.
template <class In, class Out>
class Pipeline {
 public:
  Pipeline(Pipeline&&) noexcept = default;
  Pipeline& operator=(Pipeline&&) noexcept = default;

  /// Admits `item` and returns its id (0, 1, 2...), waiting while max_in_flight items are in flight.
  /// Throws Error after close() or cancel(), ItemError once a fail_fast pipeline failed, StageInitError
  /// when a stage cannot be constructed. An Asio cancellation of a waiting push() or pull() (a signal_set's
  /// handler, `||` with a timer) cancels the pipeline and throws RunCancelled.
  asio::awaitable<std::uint64_t> push(In item) { co_return co_await engine_->push(detail::PortWire<In>::hold(std::move(item))); }

  /// The next result, waiting for it; empty once the pipeline is closed (or cancelled) and every result
  /// has been handed back. Throws ItemError (fail_fast) or StageInitError.
  asio::awaitable<std::optional<PipelineResult<Out>>> pull() {
    std::optional<detail::EngineResult> r = co_await engine_->pull();
    if (!r) co_return std::nullopt;
    co_return typed(std::move(*r));
  }

  /// Hands every result to `handler` on the loop as it is ready, instead of pull().
  void on_result(std::function<void(PipelineResult<Out>)> handler) {
    engine_->on_result([h = std::move(handler)](detail::EngineResult r) { h(typed(std::move(r))); });
  }

  /// No more items: those in flight finish, then the stage objects are destroyed.
  void close() { engine_->close(); }
  /// Stops now: items being handled see their StopToken, the stages' processes are stopped after
  /// cancel_grace, and every item not handed back yet is counted in unfinished().
  void cancel() { engine_->cancel(); }

  /// push()es every item, then close()s.
  asio::awaitable<void> feed(std::vector<In> items) {
    for (In& item : items) co_await push(std::move(item));
    close();
  }
  /// pull()s every result into `out` until the pipeline is closed and drained.
  asio::awaitable<void> collect(std::vector<PipelineResult<Out>>& out) {
    while (auto r = co_await pull()) out.push_back(std::move(*r));
  }

  /// Items admitted and not handed back yet.
  [[nodiscard]] std::size_t in_flight() const noexcept { return engine_->in_flight(); }
  /// Items admitted that will never be handed back (the pipeline was cancelled first).
  [[nodiscard]] std::uint64_t unfinished() const noexcept { return engine_->unfinished(); }
  /// Per-stage counters, in the order the stages were added.
  [[nodiscard]] std::vector<StageStats> stats() const { return engine_->stats(); }
  /// The pid of a stage's replica (0 while none runs).
  [[nodiscard]] pid_t replica_pid(std::string_view stage, unsigned replica) const { return engine_->replica_pid(stage, replica); }
  [[nodiscard]] pid_t fork_server_pid() const noexcept { return engine_->fork_server_pid(); }
  /// Every item's time in every stage as Chrome trace JSON, one track per stage replica (needs
  /// PipelineOptions::trace).
  void write_trace_json(std::ostream& out) const { engine_->write_trace_json(out); }

 private:
  template <class>
  friend class PipelineBuilder;
  explicit Pipeline(std::unique_ptr<detail::PipelineEngine> engine) : engine_(std::move(engine)) {}

  static PipelineResult<Out> typed(detail::EngineResult r) {
    PipelineResult<Out> out;
    out.item = r.item;
    if (r.failure) {
      out.failure = std::move(r.failure);
      return out;
    }
    try {
      out.value.emplace(detail::PortWire<Out>::take(r.value));
    } catch (const std::exception& e) {
      out.failure = ItemFailure{r.item, ItemFailureKind::exception, "(output)", 0, 0, 0, "mpaio::DecodeError", e.what()};
    }
    return out;
  }

  std::unique_ptr<detail::PipelineEngine> engine_;
};

/// Formats per-stage counters as a table: name, replicas, items, items/s over `seconds`, busy %, mean
/// queue wait, failures, restarts.
std::string format_stage_table(const std::vector<StageStats>& stats, double seconds);

}  // namespace mpaio
