#include "mpaio/process_pool_executor.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>
#include <unordered_set>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "mpaio/detail/syscall.hpp"
#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/shared_memory.hpp"
#include "process/fd_passing.hpp"
#include "process/protocol.hpp"

namespace mpaio {

namespace {

using detail::Channel;
using detail::TaskKind;
using detail::TaskRecord;
using detail::UniqueFd;

constexpr int kForkServerTimeoutMs = 10'000;

/// How a worker process ended.
struct ExitReport {
  int code = -1;    // exit status, -1 when killed or unknown
  int signal = 0;   // the signal that killed it
  bool known = false;

  [[nodiscard]] bool clean() const noexcept { return known && signal == 0 && code == 0; }
  /// In words: "killed by signal 9 (Killed)" or "exited with code 42".
  [[nodiscard]] std::string text() const {
    if (!known) return "died (no exit status from the fork server)";
    if (signal != 0) {
      const char* name = ::sigdescr_np(signal);
      return fmt::format("killed by signal {} ({})", signal, name != nullptr ? name : "unknown");
    }
    return fmt::format("exited with code {}", code);
  }
};

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

struct ProcessPoolExecutor::Impl {
  struct Slot {
    Channel channel;
    pid_t pid = 0;
    UniqueFd pidfd;
    UniqueFd socket;
    std::uint64_t task_head = 0;
    std::uint64_t result_tail = 0;
    std::deque<ChunkTask> in_flight;       // in submission order; the front one is running
    std::unordered_set<std::uint64_t> segments;  // segment keys this worker has mapped
    bool alive = false;
    std::uint64_t timed_out = 0;    // id + 1 of the chunk it was stopped for, 0 if none
    std::int64_t stop_sent_ns = 0;  // when it got SIGTERM for that chunk
    bool killed = false;            // whether it got SIGKILL after the grace period
    std::size_t chunks_given = 0;   // chunks sent to this process
    bool retiring = false;          // told to stop after its last chunk (max_chunks_per_worker)
    bool untrusted = false;         // wrote a malformed result record: killed, its ring is not read again
  };

  /// The run's watchers; shared with pending handlers so that they outlive a stopped run.
  struct Watch {
    explicit Watch(const asio::any_io_executor& loop) : wake(loop), tick(loop), held(loop) {}
    bool active = true;
    asio::posix::stream_descriptor wake;
    asio::steady_timer tick;  // checks chunk timeouts
    asio::steady_timer held;  // collects results workers hold without waking us (Impl::watch_held)
    bool held_pending = false;
    std::int64_t drained_ns = 0;  // when collect() last ran
    std::vector<std::unique_ptr<asio::posix::stream_descriptor>> deaths;
  };

  ProcessPoolOptions options;
  std::size_t depth = 0;  // most chunks a worker holds: the running one plus the queue
  std::int64_t chunk_ns = 0;  // this run's chunk duration, a moving average of the results; 0: none yet
  detail::PoolLayout layout;
  std::optional<SharedMemory> channels;
  UniqueFd eventfd;
  pid_t fork_server = -1;
  UniqueFd fork_socket;
  std::vector<Slot> slots;
  std::size_t next_slot = 0;
  ChannelTraffic traffic;

  RunContext context;
  std::shared_ptr<Watch> watch;
  std::deque<ChunkTask> orphans;  // queued on a worker that died before running them

  explicit Impl(ProcessPoolOptions opts) : options(opts) {
    const std::size_t n = options.workers;
    if (n == 0) throw InvalidArgument("ProcessPoolExecutor: workers must be at least 1, got 0");
    if (options.queue_depth == 0 || options.queue_depth > 32) {
      throw InvalidArgument(fmt::format("ProcessPoolExecutor: queue_depth must be 1..32, got {}", options.queue_depth));
    }
    if (options.max_result_bytes == 0 || options.max_result_bytes > (std::size_t{1} << 30)) {
      throw InvalidArgument(
          fmt::format("ProcessPoolExecutor: max_result_bytes must be 1..2^30, got {}", options.max_result_bytes));
    }
    depth = options.queue_depth + 1;
    layout.ring_capacity = detail::align_up(2 * (options.max_result_bytes + 8192), 4096);
    layout.slot_bytes = Channel::footprint(layout.ring_capacity);
    layout.slots = n;
    layout.max_result_bytes = options.max_result_bytes;
    layout.worker_spin = options.worker_spin;
    layout.max_result_delay = options.max_result_delay;
    layout.refill_below = options.queue_depth / 2;
    layout.shutdown_grace = options.shutdown_grace;
    if (options.pin_workers) {
      const int cpus = std::max(1, static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
      for (int cpu : options.cpus) {
        if (cpu < 0 || cpu >= CPU_SETSIZE) throw InvalidArgument(fmt::format("ProcessPoolExecutor: no CPU {}", cpu));
      }
      layout.pinned_cpus = options.cpus;
      for (int cpu = 0; options.cpus.empty() && cpu < cpus; ++cpu) layout.pinned_cpus.push_back(cpu);
    }
    channels.emplace(SharedMemory::create(layout.slot_bytes * n, {.reserve = false}));  // memfd: no /dev/shm quota
    layout.channels = channels->data();
    eventfd = UniqueFd(detail::sys("eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }));
    layout.eventfd = eventfd.get();
    start_fork_server();
    slots.resize(n);
    try {
      for (std::size_t i = 0; i < n; ++i) spawn(i);
    } catch (...) {
      shutdown();
      throw;
    }
  }

  ~Impl() { shutdown(); }

  void start_fork_server() {
    int pair[2];
    detail::sys("socketpair", [&] { return ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair); });
    UniqueFd ours(pair[0]);
    UniqueFd theirs(pair[1]);
    const pid_t pid = detail::sys("fork", [] { return ::fork(); }, "role", "fork server");
    if (pid == 0) detail::fork_server_main(layout, theirs.get());
    fork_server = pid;
    fork_socket = std::move(ours);
  }

  /// Asks the fork server for a new worker in `slot`.
  void spawn(std::size_t index) {
    Slot& slot = slots[index];
    slot.channel = layout.channel(index);
    slot.channel.reset();
    slot.task_head = 0;
    slot.result_tail = 0;
    slot.segments.clear();
    slot.timed_out = 0;
    slot.stop_sent_ns = 0;
    slot.killed = false;
    slot.chunks_given = 0;
    slot.retiring = false;
    slot.untrusted = false;
    const detail::ForkRequest request{detail::ForkRequest::Op::spawn, static_cast<std::uint32_t>(index)};
    detail::send_message(fork_socket.get(), {reinterpret_cast<const std::byte*>(&request), sizeof request});
    detail::ForkReply reply{};
    std::vector<UniqueFd> fds;
    const std::size_t n = detail::receive_message(
        fork_socket.get(), {reinterpret_cast<std::byte*>(&reply), sizeof reply}, fds, kForkServerTimeoutMs);
    if (n != sizeof reply) {
      throw SystemError(detail::describe_call("spawn worker", "slot", index), EPIPE, "the fork server is gone");
    }
    if (reply.error != 0 || fds.size() != 2) {
      throw SystemError(detail::describe_call("fork", "role", "worker", "slot", index), reply.error);
    }
    slot.pid = reply.pid;
    slot.pidfd = std::move(fds[0]);
    slot.socket = std::move(fds[1]);
    slot.alive = true;
  }

  void shutdown() noexcept {
    if (fork_server <= 0) return;
    for (Slot& slot : slots) {
      if (!slot.alive) continue;
      const auto& h = slot.channel.header();
      if (slot.task_head - h.task_tail.load(std::memory_order_acquire) < detail::kTaskSlots) {
        push(slot, TaskRecord{TaskKind::stop, 0, 0, 0, 0, 0, 0, {}});
      }
    }
    const detail::ForkRequest request{detail::ForkRequest::Op::shutdown, 0};
    try {
      detail::send_message(fork_socket.get(), {reinterpret_cast<const std::byte*>(&request), sizeof request});
    } catch (...) {
      fork_socket.reset();  // the fork server then sees end of stream and kills its workers at once
    }
    while (::waitpid(fork_server, nullptr, 0) < 0 && errno == EINTR) {
    }
    fork_server = -1;
    for (Slot& slot : slots) slot.alive = false;
  }

  void push(Slot& slot, const TaskRecord& record) {
    traffic.task_bytes += sizeof record;
    auto& h = slot.channel.header();
    h.tasks[slot.task_head % detail::kTaskSlots] = record;
    h.task_head.store(++slot.task_head, std::memory_order_seq_cst);
    slot.channel.wake_worker();
  }

  /// Pushes a control record, waiting briefly for the worker to make room (it consumes them at once).
  void push_control(std::size_t index, const TaskRecord& record) {
    Slot& slot = slots[index];
    const auto& h = slot.channel.header();
    const std::int64_t deadline = detail::monotonic_ns() + 5'000'000'000;
    while (slot.task_head - h.task_tail.load(std::memory_order_acquire) >= detail::kTaskSlots) {
      if (detail::monotonic_ns() > deadline || readable_now(slot.pidfd.get())) {
        throw SystemError(detail::describe_call("bind arrays", "worker", index, "pid", slot.pid), EBUSY,
                          "the worker does not take control records");
      }
      slot.channel.wake_worker();
      std::this_thread::yield();
    }
    push(slot, record);
  }

  /// Sends run array `i` to worker `index`, with the segment's descriptor if it has not mapped it yet.
  void bind(std::size_t index, std::uint32_t i) {
    Slot& slot = slots[index];
    const RunArray& array = context.arrays[i];
    detail::BindMessage msg{};
    msg.array = i;
    msg.ndim = static_cast<std::uint32_t>(array.meta.shape.size());
    msg.key = array.segment_key;
    msg.offset = array.meta.offset;
    msg.segment_size = array.segment_size;
    msg.nbytes = array.meta.nbytes();
    std::copy(array.meta.shape.begin(), array.meta.shape.end(), msg.shape);
    const bool send_fd = slot.segments.insert(array.segment_key).second;
    const int fd = array.segment_fd;
    detail::send_message(slot.socket.get(), {reinterpret_cast<const std::byte*>(&msg), sizeof msg},
                         send_fd ? std::span<const int>(&fd, 1) : std::span<const int>{});
    traffic.task_bytes += sizeof msg;
    push_control(index, TaskRecord{TaskKind::bind, i, 0, 0, 0, 0, 0, {}});
  }

  /// Prepares worker `index` for the run: log level, forgets segments this process no longer has, binds arrays.
  void prepare(std::size_t index) {
    Slot& slot = slots[index];
    push_control(index, TaskRecord{TaskKind::log_level, static_cast<std::uint32_t>(spdlog::get_level()), 0, 0, 0, 0,
                                   0, {}});
    for (auto it = slot.segments.begin(); it != slot.segments.end();) {
      if (detail::segment_alive(*it)) {
        ++it;
        continue;
      }
      push_control(index, TaskRecord{TaskKind::forget, 0, 0, 0, 0, 0, *it, {}});
      it = slot.segments.erase(it);
    }
    for (std::uint32_t i = 0; i < context.arrays.size(); ++i) bind(index, i);
    await_control_records(index);
  }

  /// Waits until worker `index` has taken every record queued so far. Chunk records are pushed without
  /// waiting for room: a slot never holds more than queue_depth + 1 chunks and a stop record, which fit in
  /// the ring only once the control records of prepare() (one per array of the run) are consumed.
  void await_control_records(std::size_t index) {
    static_assert(32 + 1 + 1 <= detail::kTaskSlots, "queue_depth <= 32: chunk and stop records fit in the ring");
    Slot& slot = slots[index];
    const auto& h = slot.channel.header();
    const std::int64_t deadline = detail::monotonic_ns() + 5'000'000'000;
    while (h.task_tail.load(std::memory_order_acquire) != slot.task_head) {
      if (detail::monotonic_ns() > deadline || readable_now(slot.pidfd.get())) {
        throw SystemError(detail::describe_call("bind arrays", "worker", index, "pid", slot.pid), EBUSY,
                          "the worker does not take control records");
      }
      slot.channel.wake_worker();
      std::this_thread::yield();
    }
  }

  /// Waits (briefly: the fork server reaps at once) for the exit report of the worker in `index`.
  ExitReport await_exit_report(std::size_t index) {
    Slot& slot = slots[index];
    auto& h = slot.channel.header();
    const std::int64_t deadline = detail::monotonic_ns() + 2'000'000'000;
    while (h.exit_pid.load(std::memory_order_seq_cst) != slot.pid) {
      if (detail::monotonic_ns() > deadline) return {};
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return {h.exit_code, h.exit_signal, true};
  }

  void start_run(const RunContext& ctx) {
    if (fork_server <= 0) throw Error("ProcessPoolExecutor: the pool has been shut down");
    context = ctx;
    chunk_ns = 0;
    orphans.clear();
    for (Slot& slot : slots) slot.channel.header().stop_requested.store(0, std::memory_order_relaxed);
    for (std::size_t i = 0; i < slots.size(); ++i) {
      Slot& slot = slots[i];
      slot.in_flight.clear();
      // A worker told to retire is leaving (its chunks are done): replace it now rather than race it.
      if (slot.alive && (slot.retiring || readable_now(slot.pidfd.get()))) retire(i);
      if (!slot.alive) spawn(i);
      try {
        prepare(i);
      } catch (const SystemError&) {
        if (!readable_now(slot.pidfd.get())) throw;
        retire(i);  // it died between our check and the bind: once more with a new one
        spawn(i);
        prepare(i);
      }
    }
    uint64_t drained = 0;
    (void)::read(eventfd.get(), &drained, sizeof drained);  // stale wake-ups from between runs
    watch = std::make_shared<Watch>(ctx.loop);
    watch->wake.assign(detail::dup_fd(eventfd.get()).release());
    for (std::size_t i = 0; i < slots.size(); ++i) watch_death(i);
    for (Slot& slot : slots) slot.channel.header().parent_armed.store(1, std::memory_order_seq_cst);
    wait_for_results();
    if (context.chunk_timeout.count() > 0) watch_timeouts();
  }

  void watch_timeouts() {
    const auto period = std::clamp(context.chunk_timeout / 4, std::chrono::milliseconds(1), std::chrono::milliseconds(100));
    watch->tick.expires_after(period);
    watch->tick.async_wait([this, w = watch](const std::error_code& ec) {
      if (ec || !w->active) return;
      check_timeouts();
      watch_timeouts();
    });
  }

  /// Sends SIGTERM to a worker whose chunk runs past the timeout, and SIGKILL once the grace period is over.
  void check_timeouts() {
    const std::int64_t now = detail::monotonic_ns();
    const std::int64_t timeout = std::chrono::nanoseconds(context.chunk_timeout).count();
    const std::int64_t grace = std::chrono::nanoseconds(context.timeout_grace).count();
    for (Slot& slot : slots) {
      if (!slot.alive) continue;
      if (slot.stop_sent_ns != 0) {
        if (!slot.killed && now - slot.stop_sent_ns >= grace) {
          ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGKILL, nullptr, 0);
          slot.killed = true;
        }
        continue;
      }
      const auto& h = slot.channel.header();
      const std::uint64_t running = h.running.load(std::memory_order_acquire);
      const std::int64_t since = h.running_since_ns.load(std::memory_order_relaxed);
      if (running == 0 || h.running.load(std::memory_order_acquire) != running) continue;  // between chunks
      if (now - since < timeout) continue;
      ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGTERM, nullptr, 0);
      slot.timed_out = running;
      slot.stop_sent_ns = now;
    }
  }

  /// Waits (up to the shutdown grace) for worker `index` to exit, kills it if it does not, and collects
  /// its exit report: the slot is then free for a new worker.
  void retire(std::size_t index) {
    Slot& slot = slots[index];
    pollfd p{slot.pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(options.shutdown_grace.count())) <= 0) {
      ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGKILL, nullptr, 0);
    }
    (void)await_exit_report(index);
    slot.alive = false;
  }

  void watch_death(std::size_t index) {
    auto death = std::make_unique<asio::posix::stream_descriptor>(context.loop, detail::dup_fd(slots[index].pidfd.get()).release());
    death->async_wait(asio::posix::stream_descriptor::wait_read,
                      [this, w = watch, index, pid = slots[index].pid](const std::error_code& ec) {
                        if (ec || !w->active || slots[index].pid != pid) return;
                        on_worker_death(index);
                      });
    if (watch->deaths.size() <= index) watch->deaths.resize(index + 1);
    watch->deaths[index] = std::move(death);
  }

  void wait_for_results() {
    watch->wake.async_wait(asio::posix::stream_descriptor::wait_read, [this, w = watch](const std::error_code& ec) {
      if (ec || !w->active) return;
      uint64_t count = 0;
      (void)::read(eventfd.get(), &count, sizeof count);
      collect();
      if (w->active) wait_for_results();
    });
  }

  /// Delivers every result that has landed; arms the workers' wake-ups once there is nothing left.
  void collect() {
    watch->drained_ns = detail::monotonic_ns();
    const std::int64_t spin = std::chrono::nanoseconds(options.caller_spin).count();
    for (;;) {
      for (std::size_t i = 0; i < slots.size() && watch && watch->active; ++i) drain(i);
      if (!watch || !watch->active) return;
      if (spin > 0 && in_flight() != 0 && spin_for_result(spin)) continue;
      for (Slot& slot : slots) slot.channel.header().parent_armed.store(1, std::memory_order_seq_cst);
      if (!result_pending()) break;
    }
    if (may_hold()) watch_held();
  }

  /// Whether workers may be holding results of short chunks without waking us (see ProcessPoolOptions).
  [[nodiscard]] bool may_hold() const {
    return chunk_ns < std::chrono::nanoseconds(options.max_result_delay).count() && in_flight() != 0;
  }

  /// A worker holds results while it has more chunks queued, guessing from the last one that the next will
  /// be short as well. When that guess is wrong, this timer still delivers them: it collects once no
  /// wake-up has for max_result_delay. It is not re-armed per wake-up (a timerfd update each time), it
  /// only fires at most once per max_result_delay and then waits for the rest of the period.
  void watch_held() {
    if (watch->held_pending) return;
    watch->held_pending = true;
    const std::int64_t period = std::chrono::nanoseconds(options.max_result_delay).count();
    const std::int64_t due = watch->drained_ns + period - detail::monotonic_ns();
    watch->held.expires_after(std::chrono::nanoseconds(std::clamp<std::int64_t>(due, 0, period)));
    watch->held.async_wait([this, w = watch, period](const std::error_code& ec) {
      w->held_pending = false;
      if (ec || !w->active) return;
      if (detail::monotonic_ns() - w->drained_ns >= period) {
        collect();  // re-arms when needed
      } else if (may_hold()) {
        watch_held();
      }
    });
  }

  /// How many chunks a worker gets at once, the running one included: about a millisecond of work, at
  /// least two (the next chunk is there when one ends), at most queue_depth + 1.
  [[nodiscard]] std::size_t window() const {
    constexpr std::int64_t kQueuedWork = 1'000'000;
    const std::size_t wanted = chunk_ns == 0 ? 2 : static_cast<std::size_t>(kQueuedWork / chunk_ns + 1);
    return std::clamp<std::size_t>(wanted, std::min<std::size_t>(2, depth), depth);
  }

  [[nodiscard]] bool result_pending() const {
    return std::any_of(slots.begin(), slots.end(), [](const Slot& slot) {
      return !slot.untrusted && slot.channel.header().result_head.load(std::memory_order_seq_cst) != slot.result_tail;
    });
  }

  [[nodiscard]] std::size_t in_flight() const {
    std::size_t n = 0;
    for (const Slot& slot : slots) n += slot.in_flight.size();
    return n;
  }

  /// Spins up to `ns` for a result to land; true if one did.
  [[nodiscard]] bool spin_for_result(std::int64_t ns) const {
    return detail::spin_until([this] { return result_pending(); }, ns);
  }

  /// Reads the result records of worker `index` and reports them.
  void drain(std::size_t index) {
    Slot& slot = slots[index];
    auto& h = slot.channel.header();
    if (slot.untrusted) return;  // its death, reported through the pidfd, accounts for its chunks
    const std::uint64_t head = h.result_head.load(std::memory_order_acquire);
    if (head == slot.result_tail) return;
    const std::size_t cap = slot.channel.capacity();
    while (slot.result_tail != head && watch && watch->active) {
      const std::size_t offset = slot.result_tail % cap;
      detail::ResultHeader rec{};
      std::memcpy(&rec, slot.channel.ring() + offset, sizeof(std::uint32_t) * 2);
      if (rec.kind == detail::ResultKind::pad && rec.size == cap - offset) {
        traffic.result_bytes += rec.size;
        slot.result_tail += rec.size;
        continue;
      }
      std::memcpy(&rec, slot.channel.ring() + offset, sizeof rec);
      if (rec.kind == detail::ResultKind::log && rec.size >= sizeof rec && rec.size <= cap - offset &&
          rec.payload <= rec.size - sizeof rec) {
        forward_log(index, rec, slot.channel.ring() + offset + sizeof rec);
        slot.result_tail += rec.size;
        continue;
      }
      const bool sane = rec.size >= sizeof rec && rec.size <= cap - offset && rec.size % 8 == 0 &&
                        rec.payload <= rec.size - sizeof rec && rec.type_len <= rec.payload &&
                        !slot.in_flight.empty() && slot.in_flight.front().id == rec.chunk_id &&
                        (rec.kind == detail::ResultKind::ok || rec.kind == detail::ResultKind::error);
      if (!sane) {  // a worker that scribbled over its channel is not trusted further
        ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGKILL, nullptr, 0);
        slot.untrusted = true;  // else collect() would find the same record pending, forever
        return;
      }
      const ChunkTask task = slot.in_flight.front();
      slot.in_flight.pop_front();
      const std::int64_t took = std::max<std::int64_t>(rec.end_ns - rec.start_ns, 1);
      chunk_ns = chunk_ns == 0 ? took : chunk_ns + (took - chunk_ns) / 8;
      ++traffic.chunks;
      traffic.result_bytes += rec.size;
      traffic.payload_bytes += rec.kind == detail::ResultKind::ok ? rec.payload : 0;
      const auto* payload = slot.channel.ring() + offset + sizeof rec;
      ChunkOutcome outcome;
      outcome.id = task.id;
      outcome.start_ns = rec.start_ns;
      outcome.end_ns = rec.end_ns;
      outcome.slot = static_cast<std::uint32_t>(index);
      outcome.pid = slot.pid;
      if (rec.kind == detail::ResultKind::ok) {
        outcome.result = {payload, rec.payload};
      } else {
        outcome.failure = ChunkFailure::exception;
        outcome.error_type = {reinterpret_cast<const char*>(payload), rec.type_len};
        outcome.error_message = {reinterpret_cast<const char*>(payload) + rec.type_len, rec.payload - rec.type_len};
      }
      context.sink->on_chunk_done(outcome);
      slot.result_tail += rec.size;
      h.result_tail.store(slot.result_tail, std::memory_order_release);
    }
    h.result_tail.store(slot.result_tail, std::memory_order_seq_cst);
    slot.channel.wake_worker();  // it may wait for ring space
  }

  /// A line a worker logged: to the caller's default logger, tagged with the worker.
  void forward_log(std::size_t index, const detail::ResultHeader& rec, const std::byte* text) const {
    const auto level = static_cast<spdlog::level::level_enum>(std::min<std::uint64_t>(rec.chunk_id, spdlog::level::off));
    spdlog::default_logger_raw()->log(level, "[mpaio-w{} pid {}] {}", index, slots[index].pid,
                                      std::string_view(reinterpret_cast<const char*>(text), rec.payload));
  }

  /// Tells worker `index` that the caller sleeps on the eventfd, so that its next result wakes the caller. A
  /// new worker's channel starts disarmed (Channel::reset): one spawned during a run must be armed, or its
  /// results wait for some other wake-up (with a single worker, forever).
  void arm(std::size_t index) { slots[index].channel.header().parent_armed.store(1, std::memory_order_seq_cst); }

  /// A worker died: keep what it finished, fail the chunk it was running, hand its queue to others.
  void on_worker_death(std::size_t index) {
    Slot& slot = slots[index];
    const pid_t dead = slot.pid;
    const ExitReport exit = await_exit_report(index);
    const std::string cause = exit.text();
    drain(index);  // results it published before dying are good
    if (!watch || !watch->active) return;
    if (slot.retiring && slot.in_flight.empty() && exit.clean()) {  // recycled as asked
      slot.alive = false;
      try {
        spawn(index);
        prepare(index);
        watch_death(index);
        arm(index);
      } catch (const std::exception& e) {
        spdlog::error("mpaio: cannot replace worker {}: {}", index, e.what());
      }
      place_orphans();
      context.sink->on_room();
      return;
    }
    std::deque<ChunkTask> lost = std::exchange(slot.in_flight, {});
    const std::uint64_t timed_out = slot.timed_out;
    slot.alive = false;
    std::string respawn_error;
    try {
      spawn(index);
      prepare(index);
      watch_death(index);
      arm(index);
    } catch (const std::exception& e) {
      slot.alive = false;
      respawn_error = e.what();
    }
    if (timed_out != 0 && (lost.empty() || lost.front().id + 1 != timed_out)) {
      // We stopped it for a chunk that finished meanwhile: the rest never ran and is not at fault.
      orphans.insert(orphans.end(), lost.begin(), lost.end());
    } else if (!lost.empty()) {
      const ChunkTask running = lost.front();
      lost.pop_front();
      orphans.insert(orphans.end(), lost.begin(), lost.end());
      if (timed_out != 0) {
        report_failure(running, index, dead, ChunkFailure::timeout,
                       fmt::format("ran past the chunk timeout of {} ms; its worker was stopped ({})",
                                   context.chunk_timeout.count(), cause));
      } else {
        report_failure(running, index, dead, ChunkFailure::crash, cause);
      }
    }
    if (!watch || !watch->active) return;
    if (std::none_of(slots.begin(), slots.end(), [](const Slot& s) { return s.alive; })) {
      // Nothing can run the rest: fail it rather than wait forever.
      const std::string why = "no worker process left: " + respawn_error;
      while (!orphans.empty() && watch && watch->active) {
        const ChunkTask task = orphans.front();
        orphans.pop_front();
        report_failure(task, index, dead, ChunkFailure::crash, why);
      }
      return;
    }
    place_orphans();
    if (watch && watch->active) context.sink->on_room();
  }

  void report_failure(const ChunkTask& task, std::size_t index, pid_t pid, ChunkFailure failure,
                      const std::string& cause) {
    ChunkOutcome outcome;
    outcome.id = task.id;
    outcome.slot = static_cast<std::uint32_t>(index);
    outcome.pid = pid;
    outcome.failure = failure;
    outcome.error_message = cause;
    context.sink->on_chunk_done(outcome);
  }

  Slot* pick_slot() {
    const std::size_t limit = window();
    Slot* best = nullptr;
    for (std::size_t k = 0; k < slots.size(); ++k) {
      Slot& s = slots[(next_slot + k) % slots.size()];
      if (!s.alive || s.retiring || s.in_flight.size() >= limit) continue;
      if (best == nullptr || s.in_flight.size() < best->in_flight.size()) best = &s;
    }
    if (best != nullptr) next_slot = static_cast<std::size_t>(best - slots.data() + 1) % slots.size();
    return best;
  }

  bool place(const ChunkTask& task) {
    Slot* slot = pick_slot();
    if (slot == nullptr) return false;
    slot->in_flight.push_back(task);
    push(*slot, TaskRecord{TaskKind::chunk, task.array, task.id, reinterpret_cast<std::uint64_t>(task.fn),
                           task.range.start, task.range.end, 0, {}});
    if (++slot->chunks_given == options.max_chunks_per_worker) {  // recycle it after this one
      slot->retiring = true;
      push(*slot, TaskRecord{TaskKind::stop, 0, 0, 0, 0, 0, 0, {}});
    }
    return true;
  }

  void place_orphans() {
    while (!orphans.empty() && place(orphans.front())) orphans.pop_front();
  }

  bool try_submit(const ChunkTask& task) {
    if (std::none_of(slots.begin(), slots.end(), [](const Slot& s) { return s.alive; })) {
      throw Error("ProcessPoolExecutor: no worker process is left to run chunks (restarting them failed)");
    }
    place_orphans();
    if (!orphans.empty()) return false;
    return place(task);
  }

  void stop_run() noexcept {
    if (watch) {
      watch->active = false;
      std::error_code ignored;
      watch->wake.cancel(ignored);
      watch->tick.cancel();
      watch->held.cancel();
      for (auto& d : watch->deaths) {
        if (d) d->cancel(ignored);
      }
      watch.reset();
    }
    // Chunks still queued or running belong to an abandoned run: replace those workers so that no stale
    // result reaches the next run.
    for (std::size_t i = 0; i < slots.size(); ++i) {
      Slot& slot = slots[i];
      if (slot.in_flight.empty() || !slot.alive) continue;
      ::syscall(SYS_pidfd_send_signal, slot.pidfd.get(), SIGKILL, nullptr, 0);
      slot.in_flight.clear();
      (void)await_exit_report(i);
      slot.alive = false;
    }
    orphans.clear();
  }
};

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options) : impl_(std::make_unique<Impl>(options)) {}
ProcessPoolExecutor::~ProcessPoolExecutor() = default;
std::size_t ProcessPoolExecutor::concurrency() const noexcept { return impl_->slots.size(); }
void ProcessPoolExecutor::start_run(const RunContext& context) { impl_->start_run(context); }
bool ProcessPoolExecutor::try_submit(const ChunkTask& task) { return impl_->try_submit(task); }
void ProcessPoolExecutor::stop_run() noexcept { impl_->stop_run(); }
void ProcessPoolExecutor::request_stop() noexcept {
  for (auto& slot : impl_->slots) slot.channel.header().stop_requested.store(1, std::memory_order_relaxed);
}
pid_t ProcessPoolExecutor::worker_pid(std::size_t slot) const { return impl_->slots.at(slot).pid; }
ChannelTraffic ProcessPoolExecutor::channel_traffic() const noexcept { return impl_->traffic; }
pid_t ProcessPoolExecutor::fork_server_pid() const noexcept { return impl_->fork_server; }

}  // namespace mpaio
