// ProcessPoolExecutor: scheduling and failure accounting over the process parts (src/process/): the fork
// server starts workers, the supervisor watches them, the rings carry tasks and results, the segment binder
// hands over the arrays, the drainer brings the results into the caller's loop.

#include "mpaio/process_pool_executor.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>

#include <asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/detail/syscall.hpp"
#include "mpaio/error.hpp"
#include "mpaio/shared_memory.hpp"
#include "pool/local_pools.hpp"
#include "process/chunk_worker.hpp"
#include "process/drainer.hpp"
#include "process/fork_server.hpp"
#include "process/segment_binder.hpp"
#include "process/supervisor.hpp"

namespace mpaio {

namespace {

using detail::Supervisor;
using detail::TaskRecord;
using detail::read_header;

/// Consecutive failures after which a slot is left empty until the next run (each retry waited longer).
constexpr unsigned kMaxStartFailures = 5;

}  // namespace

struct ProcessPoolExecutor::Impl final : Supervisor::Events, detail::Drainer::Owner {
  struct Slot {
    detail::Channel channel;
    detail::TaskRingWriter<TaskRecord, detail::kTaskSlots> tasks;
    detail::SegmentSender segments;
    std::deque<ChunkTask> in_flight;   // in submission order; the front one runs first
    std::deque<ChunkTask> abandoned;   // of a stopped run: their results are discarded when the process is gone
    std::uint64_t setup_run = 0;       // the run whose set-up it has been sent
    std::size_t chunks_given = 0;      // chunks sent to this process
    bool retiring = false;             // told to stop after its last chunk (max_chunks_per_worker)
    bool untrusted = false;            // wrote a malformed record: its ring is not read again
    bool doomed = false;               // killed by the pool: it gets no more work
    std::uint64_t timed_out = 0;       // id + 1 of the chunk it was stopped for, 0 if none
  };

  /// The run's timer for chunk timeouts; shared with its handler so that it outlives a stopped run.
  struct TimeoutWatch {
    explicit TimeoutWatch(const asio::any_io_executor& loop) : tick(loop) {}
    bool active = true;
    asio::steady_timer tick;
  };

  ProcessPoolOptions options;
  std::size_t depth = 0;      // most chunks a worker holds: the running one plus the queue
  std::int64_t chunk_ns = 0;  // this run's chunk duration, a moving average of the results; 0: none yet
  detail::ChunkWorkerSettings settings;
  std::optional<SharedMemory> channels;
  detail::UniqueFd eventfd;
  std::vector<Slot> slots;
  std::optional<detail::ForkServer> server;
  std::optional<Supervisor> supervisor;
  std::optional<detail::Drainer> drainer;
  std::size_t next_slot = 0;
  ChannelTraffic traffic;

  // The run.
  bool running = false;
  RunContext context;
  std::uint64_t run_id = 0;
  std::optional<detail::RunSetup> setup;
  bool stop_requested = false;
  std::deque<ChunkTask> orphans;  // queued on a worker that died before running them
  std::shared_ptr<TimeoutWatch> timeouts;

  explicit Impl(ProcessPoolOptions opts) : options(std::move(opts)) {
    const std::size_t n = options.workers;
    if (n == 0) throw InvalidArgument("ProcessPoolExecutor: workers must be at least 1, got 0");
    if (options.queue_depth == 0 || options.queue_depth > 32) {
      throw InvalidArgument(fmt::format("ProcessPoolExecutor: queue_depth must be 1..32, got {}", options.queue_depth));
    }
    if (options.max_result_bytes == 0 || options.max_result_bytes > (std::size_t{1} << 30)) {
      throw InvalidArgument(
          fmt::format("ProcessPoolExecutor: max_result_bytes must be 1..2^30, got {}", options.max_result_bytes));
    }
    if (options.spawn_timeout.count() <= 0) {
      throw InvalidArgument(fmt::format("ProcessPoolExecutor: spawn_timeout must be positive, got {} ms",
                                        options.spawn_timeout.count()));
    }
    std::vector<int> cpus;
    if (options.pin_workers) {
      for (int cpu : options.cpus) {
        if (cpu < 0 || cpu >= CPU_SETSIZE) throw InvalidArgument(fmt::format("ProcessPoolExecutor: no CPU {}", cpu));
      }
      cpus = options.cpus;
      const int online = std::max(1, static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
      for (int cpu = 0; options.cpus.empty() && cpu < online; ++cpu) cpus.push_back(cpu);
    }
    depth = options.queue_depth + 1;
    // A result record is at most half the ring: the largest result, its header and an error's text fit.
    settings.ring_bytes = detail::align_up(2 * (options.max_result_bytes + 8192), 4096);
    settings.slot_bytes = detail::Channel::footprint(settings.ring_bytes);
    settings.max_result_bytes = options.max_result_bytes;
    settings.worker_spin = options.worker_spin;
    settings.max_result_delay = options.max_result_delay;
    settings.refill_below = options.queue_depth / 2;
    channels.emplace(SharedMemory::create(settings.slot_bytes * n, {.reserve = false}));  // memfd: no /dev/shm quota
    settings.channels = channels->data();
    eventfd = detail::UniqueFd(detail::sys("eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }));
    settings.eventfd = eventfd.get();
    slots.resize(n);

    detail::ChildEntry worker;
    worker.name = "mpaio-w";
    worker.keep_fds = {eventfd.get()};
    if (!cpus.empty()) worker.cpu = [cpus](std::uint32_t slot) { return cpus[slot % cpus.size()]; };
    worker.main = [s = settings](const detail::ChildContext& ctx) { return detail::chunk_worker_main(s, ctx); };
    worker.backtrace_stop = "mpaio::detail::execute_chunk";
    server.emplace(std::vector<detail::ChildEntry>{std::move(worker)}, options.shutdown_grace);
    supervisor.emplace(*server, std::vector<std::uint32_t>(n, 0), *this, options.spawn_timeout);
    drainer.emplace(eventfd.get(), options.max_result_delay, *this);
    try {
      for (std::uint32_t i = 0; i < n; ++i) {
        renew(i);
        supervisor->start(i, options.spawn_timeout);
        attach(i);
      }
    } catch (...) {
      shutdown();
      throw;
    }
  }

  ~Impl() { shutdown(); }

  void shutdown() noexcept {
    if (!server) return;
    drainer->stop();
    supervisor->detach();
    for (std::uint32_t i = 0; i < slots.size(); ++i) {
      if (supervisor->state(i) == Supervisor::State::running) push(i, detail::stop_record());
    }
    server->shutdown();
    server.reset();
    // Every process is gone: the results of abandoned chunks still in the rings are discarded.
    for (std::uint32_t i = 0; i < slots.size(); ++i) {
      if (!slots[i].abandoned.empty() && !slots[i].untrusted) drainer->drain(i);
    }
  }

  // ---- slots ----------------------------------------------------------------------------------------------

  /// Makes slot `i`'s channel new for its next process (which reads it once started).
  void renew(std::uint32_t i) {
    Slot& slot = slots[i];
    drainer->remove_source(i);
    slot.channel = settings.channel(i);
    slot.channel.reset(stop_requested);
    slot.tasks = detail::TaskRingWriter<TaskRecord, detail::kTaskSlots>(slot.channel.header().tasks);
    slot.segments.reset();
    slot.setup_run = 0;
    slot.chunks_given = 0;
    slot.retiring = false;
    slot.untrusted = false;
    slot.doomed = false;
    slot.timed_out = 0;
  }

  /// Reads the results of slot `i`'s new process from now on.
  void attach(std::uint32_t i) {
    auto& h = slots[i].channel.header();
    drainer->set_source(i, {detail::RecordReader(h.results, slots[i].channel.ring()), &h.caller_wake, &h.worker_wake});
  }

  void push(std::uint32_t i, const TaskRecord& record) {
    Slot& slot = slots[i];
    // Never full: a slot holds at most queue_depth + 1 chunks, a set-up record and a stop record.
    (void)slot.tasks.try_push(record);
    traffic.task_bytes += sizeof record;
    detail::notify(slot.channel.header().worker_wake);
  }

  /// Whether chunks can be placed on slot `i` now.
  [[nodiscard]] bool accepting(std::uint32_t i) const {
    const Slot& slot = slots[i];
    return supervisor->state(i) == Supervisor::State::running && !slot.retiring && !slot.doomed &&
           slot.setup_run == run_id;
  }

  [[nodiscard]] bool any_worker_left() const {
    for (std::uint32_t i = 0; i < slots.size(); ++i) {
      if (supervisor->state(i) != Supervisor::State::empty) return true;
    }
    return false;
  }

  /// Sends this run's set-up to slot `i`'s process; a process that does not read its socket is replaced.
  void send_setup(std::uint32_t i) {
    Slot& slot = slots[i];
    if (slot.retiring || slot.doomed) return;
    bool sent = false;
    try {
      sent = slot.segments.send(supervisor->socket(i), *setup);
    } catch (const SystemError& e) {
      spdlog::debug("mpaio: cannot send the run to worker {}: {}", i, e.what());
    }
    if (!sent) {  // stuck or broken: its death replaces it
      doom(i);
      return;
    }
    push(i, detail::setup_record(run_id));
    traffic.task_bytes += sizeof(detail::RunSetupMessage);
    slot.setup_run = run_id;
  }

  // ---- runs -----------------------------------------------------------------------------------------------

  void start_run(const RunContext& ctx) {
    if (!server) throw Error("ProcessPoolExecutor: the pool has been shut down");
    if (running) throw Error("ProcessPoolExecutor: a run is already in progress on this executor");
    if (!server->alive()) throw Error(fmt::format("ProcessPoolExecutor: the fork server (pid {}) is gone", server->pid()));
    supervisor->poll();  // exits and starts that happened since the last run
    context = ctx;
    chunk_ns = 0;
    orphans.clear();
    stop_requested = false;
    ++run_id;
    detail::RunManifest manifest;
    manifest.log_level = static_cast<std::uint32_t>(spdlog::get_level());
    for (Slot& slot : slots) slot.segments.forget_dead(manifest.forget);
    std::vector<detail::RunSegment> segments;
    for (const RunArray& a : ctx.arrays) {
      manifest.arrays.push_back({a.segment_key, a.meta.offset, a.meta.nbytes(), {a.meta.shape.begin(), a.meta.shape.end()}});
      segments.push_back({a.segment_key, a.segment_fd, a.segment_size});
    }
    for (const RunParams& p : ctx.params) manifest.params.emplace_back(reinterpret_cast<const char*>(p.encoded.data()), p.encoded.size());
    setup = detail::make_run_setup(run_id, manifest, std::move(segments));
    running = true;
    for (std::uint32_t i = 0; i < slots.size(); ++i) {
      Slot& slot = slots[i];
      slot.in_flight.clear();
      slot.channel.header().stop_requested.store(0, std::memory_order_relaxed);
      switch (supervisor->state(i)) {
        case Supervisor::State::running: send_setup(i); break;
        case Supervisor::State::empty: replace(i, true); break;
        default: break;  // starting (set up when it runs), exiting (replaced when reported)
      }
    }
    drainer->start(ctx.loop);
    supervisor->attach(ctx.loop);
    if (ctx.chunk_timeout.count() > 0) {
      timeouts = std::make_shared<TimeoutWatch>(ctx.loop);
      watch_timeouts();
    }
  }

  void stop_run() noexcept {
    if (!running) return;
    running = false;
    drainer->stop();
    supervisor->detach();
    if (timeouts) {
      timeouts->active = false;
      timeouts->tick.cancel();
      timeouts.reset();
    }
    // Chunks still queued or running belong to an abandoned run: stop those workers so that no stale result
    // reaches the next run. Their results are discarded (what they hold, pool references in flight, is
    // released): those published by now at once, any later one when the process is gone.
    for (std::uint32_t i = 0; i < slots.size(); ++i) {
      Slot& slot = slots[i];
      if (slot.in_flight.empty()) continue;
      doom(i);
      slot.abandoned.insert(slot.abandoned.end(), slot.in_flight.begin(), slot.in_flight.end());
      slot.in_flight.clear();
      if (!slot.untrusted) drainer->drain(i);
    }
    orphans.clear();
    setup.reset();
  }

  void request_stop() noexcept {
    stop_requested = true;
    for (Slot& slot : slots) slot.channel.header().stop_requested.store(1, std::memory_order_relaxed);
  }

  bool try_submit(const ChunkTask& task) {
    if (!any_worker_left()) {
      throw Error("ProcessPoolExecutor: no worker process is left to run chunks (restarting them failed)");
    }
    place_orphans();
    if (!orphans.empty()) return false;
    return place(task);
  }

  // ---- scheduling -----------------------------------------------------------------------------------------

  /// How many chunks a worker gets at once, the running one included: about a millisecond of work, at
  /// least two (the next chunk is there when one ends), at most queue_depth + 1.
  [[nodiscard]] std::size_t window() const {
    constexpr std::int64_t kQueuedWork = 1'000'000;
    const std::size_t wanted = chunk_ns == 0 ? 2 : static_cast<std::size_t>(kQueuedWork / chunk_ns + 1);
    return std::clamp<std::size_t>(wanted, std::min<std::size_t>(2, depth), depth);
  }

  std::optional<std::uint32_t> pick_slot() {
    const std::size_t limit = window();
    std::optional<std::uint32_t> best;
    for (std::size_t k = 0; k < slots.size(); ++k) {
      const auto i = static_cast<std::uint32_t>((next_slot + k) % slots.size());
      if (!accepting(i) || slots[i].in_flight.size() >= limit) continue;
      if (!best || slots[i].in_flight.size() < slots[*best].in_flight.size()) best = i;
    }
    if (best) next_slot = (*best + 1) % slots.size();
    return best;
  }

  bool place(const ChunkTask& task) {
    const std::optional<std::uint32_t> i = pick_slot();
    if (!i) return false;
    Slot& slot = slots[*i];
    slot.in_flight.push_back(task);
    const std::uint32_t params = task.params == kNoRunParams ? detail::kNoParams : task.params;
    push(*i, detail::chunk_record({task.id, task.worker_type, task.range.start, task.range.end, task.array, params}));
    if (++slot.chunks_given == options.max_chunks_per_worker) {  // recycle it after this one
      slot.retiring = true;
      push(*i, detail::stop_record());
    }
    return true;
  }

  void place_orphans() {
    while (!orphans.empty() && place(orphans.front())) orphans.pop_front();
  }

  [[nodiscard]] std::size_t in_flight() const {
    std::size_t n = 0;
    for (const Slot& slot : slots) n += slot.in_flight.size();
    return n;
  }

  // ---- results (Drainer::Owner) ---------------------------------------------------------------------------

  [[nodiscard]] bool may_hold() const override {
    return chunk_ns < std::chrono::nanoseconds(options.max_result_delay).count() && in_flight() != 0;
  }

  bool on_record(std::size_t index, const detail::RecordReader::Record& record) override {
    const auto i = static_cast<std::uint32_t>(index);
    traffic.result_bytes += detail::RecordWriter::record_size(record.body.size());
    switch (static_cast<detail::ResultKind>(record.kind)) {
      case detail::ResultKind::log: {
        detail::LogLine line{};
        if (!read_header(record.body, line)) return distrust(i);
        forward_log(i, line, record.body.subspan(sizeof line));
        return true;
      }
      case detail::ResultKind::done: {
        detail::ChunkDone done{};
        if (!read_header(record.body, done)) return distrust(i);
        ChunkOutcome outcome;
        outcome.id = done.chunk_id;
        outcome.result = record.body.subspan(sizeof done);
        outcome.start_ns = done.start_ns;
        outcome.end_ns = done.end_ns;
        return deliver(i, outcome);
      }
      case detail::ResultKind::failed: {
        detail::ChunkFailed failed{};
        if (!read_header(record.body, failed)) return distrust(i);
        const auto text = record.body.subspan(sizeof failed);
        if (std::uint64_t{failed.type_bytes} + failed.message_bytes + failed.payload_bytes != text.size()) return distrust(i);
        ChunkOutcome outcome;
        outcome.id = failed.chunk_id;
        outcome.start_ns = failed.start_ns;
        outcome.end_ns = failed.end_ns;
        outcome.failure = ChunkFailure::exception;
        outcome.error_type = {reinterpret_cast<const char*>(text.data()), failed.type_bytes};
        outcome.error_message = {reinterpret_cast<const char*>(text.data()) + failed.type_bytes, failed.message_bytes};
        outcome.failure_payload = text.subspan(std::size_t{failed.type_bytes} + failed.message_bytes, failed.payload_bytes);
        return deliver(i, outcome);
      }
    }
    return distrust(i);
  }

  /// Hands a chunk's outcome to the run (or, when no run wants it, drops it and what it holds).
  bool deliver(std::uint32_t i, ChunkOutcome& outcome) {
    Slot& slot = slots[i];
    if (!running) {  // a result of an abandoned run, read once its process is gone
      auto it = std::find_if(slot.abandoned.begin(), slot.abandoned.end(), [&](const ChunkTask& t) { return t.id == outcome.id; });
      if (it != slot.abandoned.end() && outcome.failure == ChunkFailure::none) {
        if (const detail::WorkerType* type = detail::find_worker_type(it->worker_type)) type->discard(outcome.result);
      }
      return true;
    }
    if (slot.in_flight.empty() || slot.in_flight.front().id != outcome.id) return distrust(i);
    slot.in_flight.pop_front();
    supervisor->mark_healthy(i);
    const std::int64_t took = std::max<std::int64_t>(outcome.end_ns - outcome.start_ns, 1);
    chunk_ns = chunk_ns == 0 ? took : chunk_ns + (took - chunk_ns) / 8;
    ++traffic.chunks;
    traffic.payload_bytes += outcome.failure == ChunkFailure::none ? outcome.result.size() : 0;
    outcome.slot = i;
    outcome.pid = supervisor->pid(i);
    context.sink->on_chunk_done(outcome);
    // The result made room: chunks a dead worker left take it first (the run may submit no new chunk that
    // would place them).
    if (running) place_orphans();
    return running;
  }

  /// A worker wrote what no correct worker writes: it is killed, and its death accounts for its chunks.
  bool distrust(std::uint32_t i) {
    slots[i].untrusted = true;
    drainer->remove_source(i);
    doom(i);
    return running;
  }

  /// Kills slot `i`'s process; until it is gone, it gets no work.
  void doom(std::uint32_t i) {
    slots[i].doomed = true;
    supervisor->kill(i);
  }

  void on_malformed(std::size_t index) override { (void)distrust(static_cast<std::uint32_t>(index)); }

  /// A line a worker logged: to the caller's default logger, tagged with the worker.
  void forward_log(std::uint32_t i, const detail::LogLine& line, std::span<const std::byte> text) const {
    const auto level = static_cast<spdlog::level::level_enum>(std::min<std::uint32_t>(line.level, spdlog::level::off));
    spdlog::default_logger_raw()->log(level, "[mpaio-w{} pid {}] {}", i, supervisor->pid(i),
                                      std::string_view(reinterpret_cast<const char*>(text.data()), text.size()));
  }

  // ---- processes (Supervisor::Events) ---------------------------------------------------------------------

  /// Starts a new process in the empty slot `i`, unless the slot keeps failing.
  void replace(std::uint32_t i, bool fresh_run = false) {
    if (!server || (!fresh_run && supervisor->failures(i) >= kMaxStartFailures)) return;
    renew(i);
    supervisor->replace(i);
  }

  void on_started(std::uint32_t slot) override {
    attach(slot);
    if (!running) return;
    send_setup(slot);
    place_orphans();
    context.sink->on_room();
  }

  void on_spawn_failed(std::uint32_t slot, const std::string& why) override {
    if (!running) return;
    spdlog::debug("mpaio: cannot start worker {}: {}", slot, why);
    replace(slot);
    if (!any_worker_left()) {
      fail_orphans(slot, 0, "no worker process left: " + why);
      if (running) context.sink->on_room();  // the run learns from try_submit that nothing can run its chunks
    }
  }

  /// A worker is gone: keep what it finished, fail the chunk it was running, hand the rest to others.
  void on_exited(std::uint32_t i, const detail::ExitReport& exit) override {
    Slot& slot = slots[i];
    const std::uint64_t running_chunk = slot.channel.header().running.load(std::memory_order_acquire);
    if (!slot.untrusted) drainer->drain(i);  // results it published before dying are good
    drainer->remove_source(i);
    // Pool arrays it sent that nobody will take: those of a ring that cannot be read past a malformed
    // record, and those of an abandoned run (killed by stop_run, it may have died between taking a
    // result's transfer and publishing the record). Otherwise they would stay in flight until
    // release_orphaned_transfers().
    if (slot.untrusted || !slot.abandoned.empty()) detail::release_transfers_from(exit.pid);
    slot.abandoned.clear();
    std::deque<ChunkTask> lost = std::exchange(slot.in_flight, {});
    const bool recycled = slot.retiring && lost.empty() && exit.clean();
    // Only the chunk it was running is to blame, and only if a timeout stopped it for that very chunk or
    // no timeout stopped it at all: a chunk queued behind, or placed on it after it died, never ran.
    std::optional<ChunkTask> blamed;
    const bool stopped_for_another = slot.timed_out != 0 && slot.timed_out != running_chunk;
    for (const ChunkTask& task : lost) {
      if (!blamed && !stopped_for_another && task.id + 1 == running_chunk) {
        blamed = task;
      } else {
        orphans.push_back(task);
      }
    }
    const bool timed_out = slot.timed_out != 0;
    if (running_chunk != 0) supervisor->mark_healthy(i);  // it died in a chunk, not while starting
    replace(i, recycled);
    if (!running) return;
    if (blamed) {
      if (timed_out) {
        report_failure(*blamed, i, exit.pid, ChunkFailure::timeout,
                       fmt::format("ran past the chunk timeout of {} ms; its worker was stopped ({})",
                                   context.chunk_timeout.count(), exit.text()));
      } else {
        report_failure(*blamed, i, exit.pid, ChunkFailure::crash, exit.text());
      }
    }
    if (!running) return;
    if (!any_worker_left()) {
      fail_orphans(i, exit.pid, "no worker process left: the last one " + exit.text());
      if (running) context.sink->on_room();
      return;
    }
    place_orphans();
    if (running) context.sink->on_room();
  }

  /// Nothing can run the orphans: fail them rather than wait for ever.
  void fail_orphans(std::uint32_t i, pid_t pid, const std::string& why) {
    while (!orphans.empty() && running) {
      const ChunkTask task = orphans.front();
      orphans.pop_front();
      report_failure(task, i, pid, ChunkFailure::crash, why);
    }
  }

  void report_failure(const ChunkTask& task, std::uint32_t i, pid_t pid, ChunkFailure failure, const std::string& cause) {
    ChunkOutcome outcome;
    outcome.id = task.id;
    outcome.slot = i;
    outcome.pid = pid;
    outcome.failure = failure;
    outcome.error_message = cause;
    context.sink->on_chunk_done(outcome);
  }

  // ---- timeouts -------------------------------------------------------------------------------------------

  void watch_timeouts() {
    const auto period = std::clamp(context.chunk_timeout / 4, std::chrono::milliseconds(1), std::chrono::milliseconds(100));
    timeouts->tick.expires_after(period);
    timeouts->tick.async_wait([this, w = timeouts](const std::error_code& ec) {
      if (ec || !w->active) return;
      check_timeouts();
      watch_timeouts();
    });
  }

  /// Stops a worker whose chunk runs past the timeout: SIGTERM, then SIGKILL once the grace has passed.
  void check_timeouts() {
    const std::int64_t now = detail::monotonic_ns();
    const std::int64_t timeout = std::chrono::nanoseconds(context.chunk_timeout).count();
    for (std::uint32_t i = 0; i < slots.size(); ++i) {
      Slot& slot = slots[i];
      if (slot.timed_out != 0 || supervisor->state(i) != Supervisor::State::running) continue;
      const auto& h = slot.channel.header();
      const std::uint64_t chunk = h.running.load(std::memory_order_acquire);
      const std::int64_t since = h.running_since_ns.load(std::memory_order_relaxed);
      if (chunk == 0 || h.running.load(std::memory_order_acquire) != chunk || now - since < timeout) continue;
      slot.timed_out = chunk;
      supervisor->terminate(i, context.timeout_grace);
    }
  }
};

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
ProcessPoolExecutor::~ProcessPoolExecutor() = default;
std::size_t ProcessPoolExecutor::concurrency() const noexcept { return impl_->slots.size(); }
void ProcessPoolExecutor::start_run(const RunContext& context) { impl_->start_run(context); }
bool ProcessPoolExecutor::try_submit(const ChunkTask& task) { return impl_->try_submit(task); }
void ProcessPoolExecutor::stop_run() noexcept { impl_->stop_run(); }
void ProcessPoolExecutor::request_stop() noexcept { impl_->request_stop(); }
pid_t ProcessPoolExecutor::worker_pid(std::size_t slot) const {
  if (slot >= impl_->slots.size()) throw InvalidArgument(fmt::format("ProcessPoolExecutor::worker_pid: no slot {}", slot));
  auto& supervisor = *impl_->supervisor;
  const auto i = static_cast<std::uint32_t>(slot);
  if (!impl_->running) supervisor.poll();  // between runs nothing else watches: catch up with exits and starts
  return supervisor.pid(i);
}
ChannelTraffic ProcessPoolExecutor::channel_traffic() const noexcept { return impl_->traffic; }
pid_t ProcessPoolExecutor::fork_server_pid() const noexcept { return impl_->server ? impl_->server->pid() : -1; }

}  // namespace mpaio
