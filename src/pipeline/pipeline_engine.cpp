// The pipeline engine: every value goes through the caller, which routes it from the stage that made it to
// the stages that take it. The caller therefore knows, at every moment, where each item is: a replica that
// dies loses nothing (its items are sent again, or failed, by the caller), a join is a count of the inputs
// an item still lacks, and admission against one global limit bounds every queue at once, so no edge can
// fill up and block another. Values that are pool arrays travel as references, so routing costs a ring
// record per hop, never a copy of a frame.

#include "mpaio/detail/pipeline_engine.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "mpaio/detail/chunk_call.hpp"
#include "mpaio/detail/syscall.hpp"
#include "mpaio/error.hpp"
#include "mpaio/shared_memory.hpp"
#include "pipeline/stage_channel.hpp"
#include "pipeline/stage_process.hpp"
#include "pool/local_pools.hpp"
#include "process/drainer.hpp"
#include "process/fork_server.hpp"
#include "process/supervisor.hpp"

namespace mpaio {

std::string ItemFailure::describe() const {
  std::string where = pid != 0 ? fmt::format("replica {}, pid {}, attempt {}", replica, pid, attempt + 1)
                               : fmt::format("attempt {}", attempt + 1);
  std::string cause = error_type.empty() ? message : error_type + ": " + message;
  return fmt::format("item {} failed in stage '{}' ({}): {}", item, stage, where, cause);
}

std::string format_stage_table(const std::vector<StageStats>& stats, double seconds) {
  std::string out = fmt::format("{:<18} {:>8} {:>9} {:>9} {:>7} {:>11} {:>8} {:>8}\n", "stage", "replicas", "items",
                                "items/s", "busy", "queue wait", "failures", "restarts");
  for (const StageStats& s : stats) {
    const double busy = seconds > 0 && s.replicas > 0 ? 100.0 * static_cast<double>(s.busy_ns) / 1e9 / seconds / s.replicas : 0;
    const double wait_ms = s.items > 0 ? static_cast<double>(s.queue_wait_ns) / 1e6 / static_cast<double>(s.items) : 0;
    out += fmt::format("{:<18} {:>8} {:>9} {:>9.1f} {:>6.0f}% {:>8.2f} ms {:>8} {:>8}\n", s.name, s.replicas, s.items,
                       seconds > 0 ? static_cast<double>(s.items) / seconds : 0.0, busy, wait_ms, s.failures, s.restarts);
  }
  return out;
}

namespace detail {

using std::chrono::milliseconds;

struct PipelineEngine::Impl final : Supervisor::Events, Drainer::Owner {
  /// An item sent to a replica and not answered yet.
  struct Assigned {
    std::uint64_t item = 0;
    std::uint32_t attempt = 0;
  };

  struct Replica {
    std::uint32_t stage = 0;
    unsigned index = 0;  // among its stage's replicas
    StageChannel channel;
    RecordWriter tasks;
    std::deque<Assigned> outstanding;  // in the order sent; the replica answers in that order
    bool ready = false;       // its stage object is constructed
    bool stopping = false;    // told to stop: its exit is expected
    bool doomed = false;      // killed by the engine: it gets no more items
    bool untrusted = false;   // wrote a malformed record: its ring is not read again
    bool given_up = false;    // its constructions kept failing: left empty
    std::uint64_t timed_out = 0;  // item + 1 it was stopped for
    unsigned init_failures = 0;   // constructions (or starts) that failed in a row
    std::string init_error;       // the last one's cause
  };

  struct StageState {
    std::vector<std::uint32_t> slots;  // its replicas' slots
    std::deque<std::uint64_t> ready;   // items whose inputs are all there, waiting for a replica
    std::size_t queue = 2;             // items one replica holds at most
    StageStats stats;
  };

  struct Item {
    std::vector<std::optional<HeldValue>> values;  // per port
    std::vector<std::uint32_t> missing;            // per stage: inputs it still lacks
    std::vector<std::uint32_t> attempts;           // per stage
    std::vector<std::int64_t> ready_ns;            // per stage: when its inputs were complete
  };

  struct Span {
    std::uint32_t slot = 0;
    pid_t pid = 0;
    std::uint64_t item = 0;
    std::uint32_t attempt = 0;
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    bool ok = true;
  };

  PipelineSpec spec;
  PipelineOptions options;
  StageProcessSettings settings;
  std::optional<SharedMemory> channels;
  UniqueFd eventfd;
  std::vector<Replica> replicas;
  std::vector<StageState> stages;
  std::vector<std::vector<std::uint32_t>> consumers;  // per port: the stages that take it (once per input)
  std::optional<ForkServer> server;
  std::optional<Supervisor> supervisor;
  std::optional<Drainer> drainer;

  std::unordered_map<std::uint64_t, Item> items;  // admitted, not ended
  std::uint64_t next_id = 0;
  std::size_t in_flight = 0;                       // admitted, not handed back, not unfinished
  std::map<std::uint64_t, EngineResult> finished;  // ended, waiting for an earlier item (input order)
  std::uint64_t next_to_emit = 0;
  std::deque<EngineResult> results;                // ready for pull()
  std::function<void(EngineResult)> handler;
  bool closed = false;
  bool cancelled = false;
  bool stages_stopped = false;
  bool shutting_down = false;
  bool quiesced = false;  // every replica is gone after close() or cancel(): nothing is watched any more
  std::exception_ptr error;  // thrown by push() and, once results run out, by pull()
  std::uint64_t unfinished = 0;
  std::vector<std::byte> scratch;
  std::vector<std::uint32_t> candidates;
  std::vector<Span> spans;
  std::int64_t epoch_ns = monotonic_ns();

  // Waiters sleep on timers that never expire; cancel() wakes them all, and each looks again.
  asio::steady_timer room_signal;
  asio::steady_timer result_signal;
  asio::steady_timer ticker;  // timeouts, the kill after a cancellation's grace
  static constexpr std::chrono::milliseconds kIdleTick{100};
  std::chrono::milliseconds timeout_tick = kIdleTick;  // a quarter of the shortest stage timeout, at least 1 ms
  std::int64_t kill_at_ns = 0;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  Impl(PipelineSpec s, PipelineOptions o, const asio::any_io_executor& l)
      : spec(std::move(s)),
        options(std::move(o)),
        room_signal(l, asio::steady_timer::time_point::max()),
        result_signal(l, asio::steady_timer::time_point::max()),
        ticker(l) {
    validate();
    std::size_t widest = 1;
    for (const StageSpec& st : spec.stages) widest = std::max(widest, st.inputs.size());
    settings.ring_bytes = align_up(2 * (widest * (options.max_item_bytes + 64) + 8192), 4096);
    settings.slot_bytes = StageChannel::footprint(settings.ring_bytes);
    settings.max_item_bytes = options.max_item_bytes;
    settings.spin = options.replica_spin;
    settings.max_result_delay = options.max_result_delay;
    consumers.resize(spec.ports.size());
    stages.resize(spec.stages.size());
    for (std::uint32_t s = 0; s < spec.stages.size(); ++s) {
      const StageSpec& st = spec.stages[s];
      for (std::uint32_t port : st.inputs) consumers[port].push_back(s);
      stages[s].stats.name = st.name;
      stages[s].stats.replicas = st.options.replicas;
      const std::size_t share = (options.max_in_flight + st.options.replicas - 1) / st.options.replicas;
      stages[s].queue = options.replica_queue != 0 ? options.replica_queue : std::clamp<std::size_t>(share, 2, 16);
      for (unsigned r = 0; r < st.options.replicas; ++r) {
        stages[s].slots.push_back(static_cast<std::uint32_t>(replicas.size()));
        Replica& replica = replicas.emplace_back();
        replica.stage = s;
        replica.index = r;
      }
    }
    channels.emplace(SharedMemory::create(settings.slot_bytes * replicas.size(), {.reserve = false}));
    settings.channels = channels->data();
    eventfd = UniqueFd(sys("eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }));
    settings.eventfd = eventfd.get();

    // One entry per stage; a replica learns which one it is from its slot.
    auto shared_spec = std::make_shared<const PipelineSpec>(spec);
    std::vector<ChildEntry> entries;
    std::vector<std::uint32_t> slot_entries;
    for (std::uint32_t s = 0; s < spec.stages.size(); ++s) {
      ChildEntry entry;
      entry.name = "mpaio-s" + std::to_string(s) + "-";
      entry.keep_fds = {eventfd.get()};
      entry.main = [set = settings, shared_spec, s, first = stages[s].slots.front()](const ChildContext& ctx) {
        return stage_process_main(set, shared_spec->stages[s], ctx.slot - first, ctx);
      };
      entry.backtrace_stop = "mpaio::detail::TypedStage";
      entries.push_back(std::move(entry));
    }
    for (const Replica& r : replicas) slot_entries.push_back(r.stage);
    server.emplace(std::move(entries), options.shutdown_grace);
    supervisor.emplace(*server, std::move(slot_entries), *this, options.spawn_timeout);
    drainer.emplace(eventfd.get(), std::max<std::chrono::nanoseconds>(options.max_result_delay, std::chrono::microseconds(1)), *this);
    try {
      for (std::uint32_t i = 0; i < replicas.size(); ++i) {
        renew(i);
        supervisor->start(i, options.spawn_timeout);
        attach(i);
      }
    } catch (...) {
      shutdown();
      throw;
    }
    drainer->start(l);
    supervisor->attach(l);
    for (const StageSpec& st : spec.stages) {
      if (st.options.timeout.count() > 0) timeout_tick = std::min(timeout_tick, std::max(milliseconds(1), st.options.timeout / 4));
    }
    if (timeout_tick < kIdleTick) tick();
  }

  ~Impl() {
    *alive = false;
    shutdown();
  }

  void validate() const {
    if (spec.stages.empty()) throw InvalidArgument("PipelineBuilder::build: the pipeline has no stage");
    if (spec.output == 0) throw InvalidArgument("PipelineBuilder::build: the output is the pipeline's input itself");
    if (options.max_in_flight == 0) throw InvalidArgument("PipelineOptions: max_in_flight must be at least 1, got 0");
    if (options.replica_queue > 64) {
      throw InvalidArgument(fmt::format("PipelineOptions: replica_queue must be 0 (automatic) to 64, got {}", options.replica_queue));
    }
    if (options.max_item_bytes == 0 || options.max_item_bytes > (std::size_t{1} << 30)) {
      throw InvalidArgument(fmt::format("PipelineOptions: max_item_bytes must be 1..2^30, got {}", options.max_item_bytes));
    }
    std::vector<bool> taken(spec.ports.size(), false);
    for (const StageSpec& st : spec.stages) {
      for (std::uint32_t port : st.inputs) taken[port] = true;
    }
    std::set<std::string> names;
    for (const StageSpec& st : spec.stages) {
      if (!names.insert(st.name).second) {
        throw InvalidArgument(fmt::format("PipelineBuilder::build: two stages are named '{}' (StageOptions::name)", st.name));
      }
      if (st.options.replicas == 0 || st.options.replicas > 1024) {
        throw InvalidArgument(fmt::format("stage '{}': replicas must be 1..1024, got {}", st.name, st.options.replicas));
      }
      if (st.options.max_init_failures == 0) {
        throw InvalidArgument(fmt::format("stage '{}': max_init_failures must be at least 1", st.name));
      }
      if (st.output != spec.output && !taken[st.output]) {
        throw InvalidArgument(fmt::format("PipelineBuilder::build: the output of stage '{}' ({}) goes nowhere: no stage "
                                          "takes it and it is not the pipeline's output",
                                          st.name, spec.ports[st.output].type));
      }
    }
    if (taken[spec.output]) {
      throw InvalidArgument(fmt::format("PipelineBuilder::build: the output port of stage '{}' is also taken by a stage; "
                                        "the pipeline's output must be the last stage's",
                                        spec.stages[static_cast<std::size_t>(spec.ports[spec.output].producer)].name));
    }
    if (!taken[0]) throw InvalidArgument("PipelineBuilder::build: no stage takes the pipeline's input");
  }

  void shutdown() noexcept {
    if (!server) return;
    shutting_down = true;
    for (Replica& r : replicas) r.channel.header().stop_requested.store(1, std::memory_order_relaxed);
    ticker.cancel();
    drainer->stop();
    supervisor->detach();
    for (std::uint32_t i = 0; i < replicas.size(); ++i) send_stop(i);
    std::vector<pid_t> pids;
    for (std::uint32_t i = 0; i < replicas.size(); ++i) pids.push_back(supervisor->pid(i));
    server->shutdown();
    server.reset();
    // Every process is gone: what they published is taken and dropped (pool arrays back to the pool), and
    // what they sent but never published is released.
    items.clear();
    for (std::uint32_t i = 0; i < replicas.size(); ++i) {
      if (!replicas[i].untrusted) drainer->drain(i);
    }
    for (pid_t pid : pids) {
      if (pid > 0) release_transfers_from(pid);
    }
    results.clear();
    finished.clear();
  }

  // ---- replicas --------------------------------------------------------------------------------------------

  void renew(std::uint32_t i) {
    Replica& r = replicas[i];
    drainer->remove_source(i);
    r.channel = settings.channel(i);
    r.channel.reset(cancelled);
    r.tasks = RecordWriter(r.channel.header().tasks, r.channel.task_ring());
    r.outstanding.clear();
    r.ready = r.stopping = r.doomed = r.untrusted = false;
    r.timed_out = 0;
  }

  void attach(std::uint32_t i) {
    auto& h = replicas[i].channel.header();
    drainer->set_source(i, {RecordReader(h.results, replicas[i].channel.result_ring()), &h.caller_wake, &h.replica_wake});
  }

  void send_stop(std::uint32_t i) noexcept {
    Replica& r = replicas[i];
    if (r.stopping || supervisor->state(i) != Supervisor::State::running) return;
    if (r.tasks.try_write(static_cast<std::uint32_t>(StageTaskKind::stop), {})) {
      r.stopping = true;
      notify(r.channel.header().replica_wake);
    } else {
      doom(i);  // a full task ring: it is not reading, so it will not stop by itself
    }
  }

  void doom(std::uint32_t i) noexcept {
    replicas[i].doomed = true;
    supervisor->kill(i);
  }

  [[nodiscard]] bool accepting(std::uint32_t i) const {
    const Replica& r = replicas[i];
    return r.ready && !r.stopping && !r.doomed && supervisor->state(i) == Supervisor::State::running &&
           r.outstanding.size() < stages[r.stage].queue;
  }

  // ---- items -----------------------------------------------------------------------------------------------

  void throw_if_refused() const {
    if (error) std::rethrow_exception(error);
    if (cancelled) throw Error("Pipeline::push: the pipeline was cancelled");
    if (closed) throw Error("Pipeline::push: the pipeline is closed");
  }

  asio::awaitable<std::uint64_t> push(HeldValue input) {
    if (input.wire.size() > options.max_item_bytes) {
      throw InvalidArgument(fmt::format("Pipeline::push: the item is {} bytes encoded, over PipelineOptions::max_item_bytes ({})",
                                        input.wire.size(), options.max_item_bytes));
    }
    for (;;) {
      throw_if_refused();
      if (in_flight < options.max_in_flight) break;
      co_await wait(room_signal);
    }
    const std::uint64_t id = next_id++;
    ++in_flight;
    Item& item = items[id];
    item.values.resize(spec.ports.size());
    item.missing.resize(spec.stages.size());
    item.attempts.assign(spec.stages.size(), 0);
    item.ready_ns.assign(spec.stages.size(), 0);
    for (std::uint32_t s = 0; s < spec.stages.size(); ++s) item.missing[s] = static_cast<std::uint32_t>(spec.stages[s].inputs.size());
    produced(id, item, 0, std::move(input));
    co_return id;
  }

  asio::awaitable<std::optional<EngineResult>> pull() {
    for (;;) {
      if (!results.empty()) {
        EngineResult r = std::move(results.front());
        results.pop_front();
        handed_back();
        co_return r;
      }
      if (error) std::rethrow_exception(error);
      if (drained()) co_return std::nullopt;
      co_await wait(result_signal);
    }
  }

  [[nodiscard]] bool drained() const { return (closed || cancelled) && items.empty() && finished.empty() && results.empty(); }

  /// Waits until `signal` is pulsed. An Asio cancellation of the waiting push() or pull() cancels the
  /// pipeline, as cancelling WorkerOrchestrator::run() cancels its run.
  asio::awaitable<void> wait(asio::steady_timer& signal) {
    std::error_code ec;
    co_await signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
      cancel();
      throw RunCancelled("Pipeline: cancelled (Asio cancellation of push() or pull()); " + std::to_string(unfinished) +
                         " items unfinished");
    }
  }

  void handed_back() {
    --in_flight;
    room_signal.cancel();
  }

  /// Port `port` of `item` has its value: the stages that now have every input get the item.
  void produced(std::uint64_t id, Item& item, std::uint32_t port, HeldValue value) {
    item.values[port] = std::move(value);
    if (port == spec.output) {
      EngineResult r;
      r.item = id;
      r.value = std::move(*item.values[port]);
      items.erase(id);
      end_item(std::move(r));
      return;
    }
    const std::int64_t now = monotonic_ns();
    for (std::uint32_t s : consumers[port]) {
      if (--item.missing[s] != 0) continue;
      item.ready_ns[s] = now;
      stages[s].ready.push_back(id);
      dispatch(s);
    }
  }

  /// Sends stage `s` the items it can take now.
  void dispatch(std::uint32_t s) {
    StageState& stage = stages[s];
    while (!stage.ready.empty()) {
      const std::uint64_t id = stage.ready.front();
      auto it = items.find(id);
      if (it == items.end()) {  // failed meanwhile
        stage.ready.pop_front();
        continue;
      }
      // The least busy replica first; one whose ring is full (large items) does not stop the others.
      candidates.clear();
      for (std::uint32_t i : stage.slots) {
        if (accepting(i)) candidates.push_back(i);
      }
      std::sort(candidates.begin(), candidates.end(), [&](std::uint32_t a, std::uint32_t b) {
        return replicas[a].outstanding.size() < replicas[b].outstanding.size();
      });
      bool sent = false;
      for (std::uint32_t i : candidates) {
        if ((sent = send(i, id, it->second))) break;
      }
      if (!sent) return;
      stage.ready.pop_front();
    }
  }

  bool send(std::uint32_t i, std::uint64_t id, Item& item) {
    Replica& r = replicas[i];
    const StageSpec& st = spec.stages[r.stage];
    const StageItem header{id, item.attempts[r.stage], static_cast<std::uint32_t>(st.inputs.size())};
    scratch.clear();
    append_bytes(scratch, &header, sizeof header);
    for (std::uint32_t port : st.inputs) {
      const auto size = static_cast<std::uint32_t>(item.values[port]->wire.size());
      append_bytes(scratch, &size, sizeof size);
    }
    for (std::uint32_t port : st.inputs) append_bytes(scratch, item.values[port]->wire.data(), item.values[port]->wire.size());
    if (!r.tasks.try_write(static_cast<std::uint32_t>(StageTaskKind::item), {scratch})) return false;
    r.outstanding.push_back({id, header.attempt});
    stages[r.stage].stats.queue_wait_ns += monotonic_ns() - item.ready_ns[r.stage];
    notify(r.channel.header().replica_wake);
    if (r.outstanding.size() > 1 && may_hold()) drainer->expect_held();  // it may hold results now
    return true;
  }

  /// An attempt of `id` at stage `s` failed: try again, or fail the item.
  void retry_or_fail(std::uint32_t s, std::uint64_t id, ItemFailure failure) {
    auto it = items.find(id);
    if (it == items.end()) return;
    Item& item = it->second;
    if (item.attempts[s] < spec.stages[s].options.retries) {
      ++item.attempts[s];
      stages[s].ready.push_front(id);
      dispatch(s);
      return;
    }
    failure.item = id;
    failure.stage = spec.stages[s].name;
    failure.attempt = item.attempts[s];
    fail_item(id, std::move(failure));
  }

  /// Ends `id` with `failure` as the error policy says.
  void fail_item(std::uint64_t id, ItemFailure failure) {
    if (options.on_error != ErrorPolicy::fail_fast || error) {
      end_failed(id, std::move(failure));
      return;
    }
    if (items.erase(id) == 0) return;
    error = std::make_exception_ptr(ItemError(failure));
    if (handler) {
      to_user({id, {}, std::move(failure)});  // the handler hears of it; push() and pull() throw it from now on
    } else {
      --in_flight;  // handed back as pull()'s exception
    }
    cancel();
  }

  /// Ends `id` with `failure`, handed back as its result. Its values go: pool arrays of the other branch are
  /// released with them. An item that already ended (a handler cancelled the pipeline meanwhile) is not
  /// ended twice.
  void end_failed(std::uint64_t id, ItemFailure failure) {
    if (items.erase(id) == 0) return;
    end_item({id, {}, std::move(failure)});
  }

  /// An item ended: hand it back in the order asked for.
  void end_item(EngineResult r) {
    if (options.order == ResultOrder::completion) {
      to_user(std::move(r));
    } else {
      finished.emplace(r.item, std::move(r));
      emit_in_order();
    }
    maybe_stop_stages();
  }

  void emit_in_order() {
    while (!finished.empty() && finished.begin()->first <= next_to_emit) {
      auto node = finished.extract(finished.begin());
      next_to_emit = node.key() + 1;
      to_user(std::move(node.mapped()));
    }
  }

  void to_user(EngineResult r) {
    if (handler) {
      handed_back();
      handler(std::move(r));
    } else {
      results.push_back(std::move(r));
      result_signal.cancel();
    }
  }

  /// After close(), once every item has ended, the stage objects are destroyed (their processes exit).
  void maybe_stop_stages() {
    if (closed && items.empty() && !stages_stopped) {
      stages_stopped = true;
      for (std::uint32_t i = 0; i < replicas.size(); ++i) send_stop(i);
      kill_after(options.shutdown_grace);
      result_signal.cancel();
    }
  }

  /// Replicas still running once `grace` has passed are killed.
  void kill_after(std::chrono::milliseconds grace) {
    const std::int64_t at = monotonic_ns() + std::chrono::nanoseconds(grace).count();
    kill_at_ns = kill_at_ns == 0 ? at : std::min(kill_at_ns, at);
    tick();
    quiesce_if_done();
  }

  /// Once the stages are stopped and every replica is gone, nothing is left to watch: the loop is let go
  /// (its run() returns when the user's coroutines are done).
  void quiesce_if_done() {
    if (quiesced || !stages_stopped) return;
    for (std::uint32_t i = 0; i < replicas.size(); ++i) {
      if (supervisor->state(i) != Supervisor::State::empty) return;
    }
    quiesced = true;
    drainer->stop();
    supervisor->detach();
    ticker.cancel();
  }

  void close() {
    closed = true;
    room_signal.cancel();
    result_signal.cancel();
    maybe_stop_stages();
  }

  void cancel() {
    if (cancelled) return;
    cancelled = true;
    for (Replica& r : replicas) r.channel.header().stop_requested.store(1, std::memory_order_relaxed);
    unfinished += items.size();
    in_flight -= items.size();
    items.clear();
    for (StageState& st : stages) st.ready.clear();
    // Items that ended behind one that never will are handed back all the same.
    while (!finished.empty()) {
      auto node = finished.extract(finished.begin());
      to_user(std::move(node.mapped()));
    }
    stages_stopped = true;
    for (std::uint32_t i = 0; i < replicas.size(); ++i) send_stop(i);
    kill_after(options.cancel_grace);
    room_signal.cancel();
    result_signal.cancel();
  }

  // ---- records (Drainer::Owner) ----------------------------------------------------------------------------

  /// Replicas hold results of short items while they have more queued: the drainer's timer collects them.
  [[nodiscard]] bool may_hold() const override { return options.max_result_delay.count() > 0 && !items.empty(); }

  bool on_record(std::size_t index, const RecordReader::Record& record) override {
    const auto i = static_cast<std::uint32_t>(index);
    Replica& r = replicas[i];
    const std::uint32_t s = r.stage;
    switch (static_cast<StageResultKind>(record.kind)) {
      case StageResultKind::ready:
        r.ready = true;
        r.init_failures = 0;
        ++stages[s].stats.constructed;
        if (!shutting_down) {
          supervisor->mark_healthy(i);
          if (cancelled || stages_stopped) send_stop(i);
          dispatch(s);
        }
        return true;
      case StageResultKind::done: {
        StageDone done{};
        if (!read_header(record.body, done)) return distrust(i);
        if (!answered(i, done.item, done.attempt)) return distrust(i);
        stages[s].stats.busy_ns += done.end_ns - done.start_ns;
        ++stages[s].stats.items;
        record_span(i, done.item, done.attempt, done.start_ns, done.end_ns, true);
        const auto result = record.body.subspan(sizeof done);
        const std::uint32_t port = spec.stages[s].output;
        auto it = items.find(done.item);
        const bool wanted = it != items.end() && it->second.attempts[s] == done.attempt;
        std::optional<HeldValue> value;
        ItemFailure failure;
        try {
          value = spec.ports[port].hold_result(result);  // adopts a pool array even when nobody wants it
        } catch (const std::exception& e) {
          failure = {0, ItemFailureKind::exception, "", r.index, supervisor->pid(i), 0, "mpaio::DecodeError",
                     std::string("its result could not be taken: ") + e.what()};
        }
        if (shutting_down) return true;
        if (wanted && !value) {
          retry_or_fail(s, done.item, std::move(failure));
        } else if (wanted) {
          produced(done.item, it->second, port, std::move(*value));
        }
        dispatch(s);  // the replica has room again
        return true;
      }
      case StageResultKind::failed:
      case StageResultKind::init_failed: {
        StageFailed failed{};
        if (!read_header(record.body, failed)) return distrust(i);
        const auto text = record.body.subspan(sizeof failed);
        if (std::uint64_t{failed.type_bytes} + failed.message_bytes != text.size()) return distrust(i);
        std::string type(reinterpret_cast<const char*>(text.data()), failed.type_bytes);
        std::string message(reinterpret_cast<const char*>(text.data()) + failed.type_bytes, failed.message_bytes);
        if (static_cast<StageResultKind>(record.kind) == StageResultKind::init_failed) {
          r.init_error = type + ": " + message;  // its exit, which follows, counts the failure
          return true;
        }
        if (!answered(i, failed.item, failed.attempt)) return distrust(i);
        ++stages[s].stats.failures;
        record_span(i, failed.item, failed.attempt, failed.start_ns, failed.end_ns, false);
        if (shutting_down) return true;
        const ItemFailureKind kind = type == kResultTooLarge ? ItemFailureKind::too_large : ItemFailureKind::exception;
        auto it = items.find(failed.item);
        if (it != items.end() && it->second.attempts[s] == failed.attempt) {
          retry_or_fail(s, failed.item, {0, kind, "", r.index, supervisor->pid(i), 0, std::move(type), std::move(message)});
        }
        dispatch(s);
        return true;
      }
    }
    return distrust(i);
  }

  /// Takes the answer to the oldest item sent to replica `i`; false if it is not that one.
  bool answered(std::uint32_t i, std::uint64_t item, std::uint32_t attempt) {
    auto& outstanding = replicas[i].outstanding;
    if (outstanding.empty() || outstanding.front().item != item || outstanding.front().attempt != attempt) return false;
    outstanding.pop_front();
    return true;
  }

  void record_span(std::uint32_t i, std::uint64_t item, std::uint32_t attempt, std::int64_t start, std::int64_t end, bool ok) {
    if (options.trace) spans.push_back({i, supervisor->pid(i), item, attempt, start, end, ok});
  }

  bool distrust(std::uint32_t i) {
    replicas[i].untrusted = true;
    drainer->remove_source(i);
    if (!shutting_down) doom(i);
    return true;
  }

  void on_malformed(std::size_t index) override { (void)distrust(static_cast<std::uint32_t>(index)); }

  // ---- processes (Supervisor::Events) ----------------------------------------------------------------------

  void on_started(std::uint32_t i) override {
    attach(i);
    // A replica publishes (its `ready`) without being asked, maybe before the arming: look once now.
    drainer->drain(i);
    if (cancelled || stages_stopped) send_stop(i);
  }

  void on_spawn_failed(std::uint32_t i, const std::string& why) override {
    Replica& r = replicas[i];
    r.init_error = "its process could not be started: " + why;
    if (stages_stopped) {  // nothing is to run on it any more
      quiesce_if_done();
      return;
    }
    construction_failed(i, 0);
  }

  void on_exited(std::uint32_t i, const ExitReport& exit) override {
    Replica& r = replicas[i];
    const std::uint32_t s = r.stage;
    const std::uint64_t running = r.channel.header().running.load(std::memory_order_acquire);
    if (!r.untrusted) drainer->drain(i);  // what it published before it died is good
    drainer->remove_source(i);
    release_transfers_from(exit.pid);      // what it sent and never published
    const bool expected = r.stopping && exit.clean();
    const bool was_ready = r.ready;
    const std::uint64_t timed_out = r.timed_out;
    std::deque<Assigned> lost = std::exchange(r.outstanding, {});
    // Only the item it was handling is to blame (and only the one a timeout stopped it for); the items
    // queued behind never ran and go back to the front of the stage's queue, in their order.
    std::optional<Assigned> blamed;
    for (auto it = lost.rbegin(); it != lost.rend(); ++it) {
      auto live = items.find(it->item);
      if (live == items.end() || live->second.attempts[s] != it->attempt) continue;
      if (!blamed && it->item + 1 == running && (timed_out == 0 || timed_out == running)) {
        blamed = *it;
      } else {
        stages[s].ready.push_front(it->item);
      }
    }
    r.ready = false;
    if (shutting_down) return;
    if (expected || stages_stopped) {
      quiesce_if_done();
      if (expected) return;
    }
    if (!was_ready) {
      if (r.init_error.empty()) r.init_error = exit.text();
      if (!stages_stopped) construction_failed(i, exit.pid);  // else killed at the end while constructing
    } else {
      ++stages[s].stats.restarts;
      if (!cancelled && !stages_stopped) replace(i);
    }
    if (blamed) {
      ++stages[s].stats.failures;
      ItemFailure failure{0, timed_out != 0 ? ItemFailureKind::timeout : ItemFailureKind::crash, "", r.index, exit.pid, 0, "", ""};
      failure.message = timed_out != 0 ? fmt::format("ran past the stage's timeout of {} ms; its replica was stopped ({})",
                                                     spec.stages[s].options.timeout.count(), exit.text())
                                       : "its replica " + exit.text();
      retry_or_fail(s, blamed->item, std::move(failure));
    }
    dispatch(s);
  }

  /// A replica's stage object could not be constructed (or its process started): try again after a pause
  /// that grows (the supervisor's back-off), up to the stage's limit; then give the replica up, and once
  /// every replica of the stage is given up, the pipeline cannot go on.
  void construction_failed(std::uint32_t i, pid_t pid) {
    Replica& r = replicas[i];
    const std::uint32_t s = r.stage;
    const StageSpec& st = spec.stages[s];
    if (++r.init_failures < st.options.max_init_failures) {
      if (!cancelled && !stages_stopped) replace(i);
      return;
    }
    r.given_up = true;
    for (std::uint32_t j : stages[s].slots) {
      if (!replicas[j].given_up) return;
    }
    const std::string why = fmt::format("stage '{}' could not be constructed: replica {}{} failed {} times in a row; the "
                                        "last time: {}",
                                        st.name, r.index, pid != 0 ? fmt::format(" (pid {})", pid) : std::string(),
                                        r.init_failures, r.init_error);
    spdlog::error("mpaio: {}", why);
    const ItemFailure failure{0, ItemFailureKind::stage_init, st.name, r.index, pid, 0, "mpaio::StageInitError", why};
    std::vector<std::uint64_t> ids;
    for (const auto& [id, item] : items) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (std::uint64_t id : ids) {  // each item gets its failure, whatever the policy; the pipeline's error is this
      ItemFailure f = failure;
      f.item = id;
      end_failed(id, std::move(f));
    }
    if (!error) error = std::make_exception_ptr(StageInitError(st.name, why));
    cancel();
  }

  void replace(std::uint32_t i) {
    if (!server) return;
    renew(i);
    supervisor->replace(i);
  }

  // ---- timers ----------------------------------------------------------------------------------------------

  void tick() {
    if (quiesced || shutting_down) return;
    ticker.expires_after(kill_at_ns != 0 ? std::min(timeout_tick, milliseconds(10)) : timeout_tick);
    ticker.async_wait([this, alive = alive](const std::error_code& ec) {
      if (ec || !*alive || shutting_down) return;
      on_tick();
      tick();
    });
  }

  void on_tick() {
    const std::int64_t now = monotonic_ns();
    for (std::uint32_t i = 0; i < replicas.size(); ++i) {
      Replica& r = replicas[i];
      if (supervisor->state(i) != Supervisor::State::running) continue;
      if (kill_at_ns != 0 && now >= kill_at_ns) {
        if (!r.doomed) doom(i);
        continue;
      }
      const auto timeout = std::chrono::nanoseconds(spec.stages[r.stage].options.timeout).count();
      if (timeout == 0 || r.timed_out != 0) continue;
      const auto& h = r.channel.header();
      const std::uint64_t item = h.running.load(std::memory_order_acquire);
      const std::int64_t since = h.running_since_ns.load(std::memory_order_relaxed);
      if (item == 0 || h.running.load(std::memory_order_acquire) != item || now - since < timeout) continue;
      r.timed_out = item;
      r.doomed = true;
      supervisor->terminate(i, options.timeout_grace);
    }
  }

  // ---- watching --------------------------------------------------------------------------------------------

  [[nodiscard]] std::vector<StageStats> stats() const {
    std::vector<StageStats> out;
    for (const StageState& st : stages) {
      out.push_back(st.stats);
      out.back().queued = st.ready.size();
    }
    return out;
  }

  void write_trace_json(std::ostream& out) const {
    nlohmann::json events = nlohmann::json::array();
    for (std::uint32_t i = 0; i < replicas.size(); ++i) {
      const Replica& r = replicas[i];
      events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", i},
                        {"args", {{"name", fmt::format("{} #{}", spec.stages[r.stage].name, r.index)}}}});
    }
    for (const Span& span : spans) {
      events.push_back({{"name", fmt::format("item {}", span.item)},
                        {"cat", span.ok ? "item" : "failed"},
                        {"ph", "X"},
                        {"pid", 1},
                        {"tid", span.slot},
                        {"ts", static_cast<double>(span.start_ns - epoch_ns) / 1e3},
                        {"dur", static_cast<double>(span.end_ns - span.start_ns) / 1e3},
                        {"args", {{"item", span.item}, {"attempt", span.attempt}, {"pid", span.pid}}}});
    }
    out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump(1);
  }
};

PipelineEngine::PipelineEngine(PipelineSpec spec, PipelineOptions options, const asio::any_io_executor& loop)
    : impl_(std::make_unique<Impl>(std::move(spec), std::move(options), loop)) {}
PipelineEngine::~PipelineEngine() = default;
asio::awaitable<std::uint64_t> PipelineEngine::push(HeldValue input) { return impl_->push(std::move(input)); }
asio::awaitable<std::optional<EngineResult>> PipelineEngine::pull() { return impl_->pull(); }
void PipelineEngine::on_result(std::function<void(EngineResult)> handler) {
  impl_->handler = std::move(handler);
  while (!impl_->results.empty()) {  // results that were waiting for pull()
    EngineResult r = std::move(impl_->results.front());
    impl_->results.pop_front();
    impl_->handed_back();
    impl_->handler(std::move(r));
  }
}
void PipelineEngine::close() { impl_->close(); }
void PipelineEngine::cancel() { impl_->cancel(); }
std::size_t PipelineEngine::in_flight() const noexcept { return impl_->in_flight; }
std::uint64_t PipelineEngine::unfinished() const noexcept { return impl_->unfinished; }
std::vector<StageStats> PipelineEngine::stats() const { return impl_->stats(); }
pid_t PipelineEngine::replica_pid(std::string_view stage, unsigned replica) const {
  for (std::uint32_t s = 0; s < impl_->spec.stages.size(); ++s) {
    if (impl_->spec.stages[s].name != stage) continue;
    if (replica >= impl_->stages[s].slots.size()) break;
    const std::uint32_t slot = impl_->stages[s].slots[replica];
    return impl_->supervisor->state(slot) == Supervisor::State::running ? impl_->supervisor->pid(slot) : 0;
  }
  throw InvalidArgument(fmt::format("Pipeline::replica_pid: no replica {} of a stage named '{}'", replica, stage));
}
pid_t PipelineEngine::fork_server_pid() const noexcept { return impl_->server ? impl_->server->pid() : -1; }
void PipelineEngine::write_trace_json(std::ostream& out) const { impl_->write_trace_json(out); }

}  // namespace detail

}  // namespace mpaio
