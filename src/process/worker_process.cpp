// The loop of a worker process: take task records, run chunks, publish result records.

#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <sched.h>

#include <algorithm>
#include <csignal>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "mpaio/detail/chunk_call.hpp"
#include "mpaio/detail/mapping.hpp"
#include "process/fd_passing.hpp"
#include "process/protocol.hpp"

namespace mpaio::detail {

namespace {

constexpr std::size_t kMaxErrorText = 2048;

class WorkerProcess {
 public:
  WorkerProcess(const PoolLayout& layout, std::size_t slot, int socket)
      : layout_(layout), channel_(layout.channel(slot)), socket_(socket) {}

  [[noreturn]] void run() {
    auto& h = channel_.header();
    for (;;) {
      if (h.task_head.load(std::memory_order_seq_cst) == task_tail_) wake_caller_if_holding();
      wait_until([&] { return h.task_head.load(std::memory_order_seq_cst) != task_tail_; });
      const TaskRecord task = h.tasks[task_tail_ % kTaskSlots];
      h.task_tail.store(++task_tail_, std::memory_order_release);
      switch (task.kind) {
        case TaskKind::chunk: run_chunk(task); break;
        case TaskKind::bind: bind(); break;
        case TaskKind::forget: segments_.erase(task.key); break;
        case TaskKind::log_level: spdlog::set_level(static_cast<spdlog::level::level_enum>(task.array)); break;
        case TaskKind::stop:
          wake_caller_if_holding();
          ::_exit(0);
      }
    }
  }

  /// Sends one line logged in this process to the caller, in order with the results.
  void publish_log(spdlog::level::level_enum level, std::string_view text) {
    text = text.substr(0, kMaxErrorText);
    const std::int64_t now = monotonic_ns();
    publish(ResultKind::log, static_cast<std::uint64_t>(level), now, now, {},
            {reinterpret_cast<const std::byte*>(text.data()), text.size()});
  }

 private:
  struct BoundArray {
    const std::byte* data = nullptr;
    std::size_t size = 0;
    std::vector<std::size_t> shape;
  };

  /// Spins for the configured time, then sleeps on the eventcount until `ready()` holds.
  template <class Ready>
  void wait_until(Ready ready) {
    if (spin_until(ready, layout_.worker_spin.count())) return;
    auto& h = channel_.header();
    for (;;) {
      const std::uint32_t seq = h.worker_seq.load(std::memory_order_seq_cst);
      h.worker_sleeping.store(1, std::memory_order_seq_cst);
      if (ready()) {
        h.worker_sleeping.store(0, std::memory_order_relaxed);
        return;
      }
      futex_wait(&h.worker_seq, seq);
      if (ready()) return;
    }
  }

  void bind() {
    BindMessage msg{};
    std::vector<UniqueFd> fds;
    const std::size_t n = receive_message(socket_, {reinterpret_cast<std::byte*>(&msg), sizeof msg}, fds);
    if (n != sizeof msg || msg.ndim > kMaxDims) ::_exit(70);  // the caller broke the protocol
    auto it = segments_.find(msg.key);
    if (it == segments_.end()) {
      if (fds.empty()) ::_exit(71);
      it = segments_.emplace(msg.key, Mapping(fds.front().get(), msg.segment_size, false)).first;
    }
    if (msg.array >= arrays_.size()) arrays_.resize(msg.array + 1);
    BoundArray& array = arrays_[msg.array];
    array.data = it->second.data() + msg.offset;
    array.shape.assign(msg.shape, msg.shape + msg.ndim);
    array.size = 1;
    for (std::size_t extent : array.shape) array.size *= extent;
  }

  void run_chunk(const TaskRecord& task) {
    if (task.array >= arrays_.size() || task.start > task.end || task.end > arrays_[task.array].size) {
      const std::int64_t now = monotonic_ns();
      publish_error(task.chunk_id, now, now, "mpaio::InvalidArgument",
                    fmt::format("chunk [{}, {}) of array {} is outside the bound arrays", task.start, task.end,
                                task.array));
      return;
    }
    const BoundArray& array = arrays_[task.array];
    out_.clear();
    auto& h = channel_.header();
    const ChunkCall call{array.data, array.shape, Range{task.start, task.end}, &out_, &h.stop_requested};
    h.running_since_ns.store(monotonic_ns(), std::memory_order_relaxed);
    h.running.store(task.chunk_id + 1, std::memory_order_release);  // for the caller's timeout watch
    const ChunkExecution done = execute_chunk(reinterpret_cast<ChunkFn>(task.fn), call);
    h.running.store(0, std::memory_order_release);
    if (done.failed) {
      publish_error(task.chunk_id, done.start_ns, done.end_ns, done.error_type, done.error_message);
    } else if (out_.size() > layout_.max_result_bytes) {
      publish_error(task.chunk_id, done.start_ns, done.end_ns, "mpaio::ResultTooLarge",
                    fmt::format("the encoded result is {} bytes, over the limit of {} bytes "
                                "(ProcessPoolOptions::max_result_bytes)",
                                out_.size(), layout_.max_result_bytes));
    } else {
      publish(ResultKind::ok, task.chunk_id, done.start_ns, done.end_ns, {}, out_);
    }
  }

  void publish_error(std::uint64_t id, std::int64_t start, std::int64_t end, std::string_view type,
                     std::string_view message) {
    type = type.substr(0, kMaxErrorText);
    message = message.substr(0, kMaxErrorText);
    error_text_.assign(type);
    error_text_.append(message);
    publish(ResultKind::error, id, start, end, type,
            {reinterpret_cast<const std::byte*>(error_text_.data()), error_text_.size()});
  }

  void publish(ResultKind kind, std::uint64_t id, std::int64_t start, std::int64_t end, std::string_view type,
               std::span<const std::byte> payload) {
    std::lock_guard lock(publish_mutex_);  // `process` may log from threads of its own
    auto& h = channel_.header();
    const std::size_t cap = channel_.capacity();
    const std::size_t record = align_up(sizeof(ResultHeader) + payload.size(), 8);
    std::size_t offset = result_head_ % cap;
    const std::size_t pad = cap - offset < record ? cap - offset : 0;
    wait_until([&] { return result_head_ + pad + record - h.result_tail.load(std::memory_order_acquire) <= cap; });
    if (pad != 0) {
      ResultHeader filler{};
      filler.size = static_cast<std::uint32_t>(pad);
      filler.kind = ResultKind::pad;
      std::memcpy(channel_.ring() + offset, &filler, sizeof(std::uint32_t) * 2);
      result_head_ += pad;
      offset = 0;
    }
    const ResultHeader header{static_cast<std::uint32_t>(record), kind, id, start, end,
                              static_cast<std::uint32_t>(payload.size()), static_cast<std::uint32_t>(type.size())};
    std::memcpy(channel_.ring() + offset, &header, sizeof header);
    if (!payload.empty()) std::memcpy(channel_.ring() + offset + sizeof header, payload.data(), payload.size());
    result_head_ += record;
    h.result_head.store(result_head_, std::memory_order_seq_cst);
    if (kind == ResultKind::log || !hold(end - start, end)) wake_caller();
  }

  /// Whether a result may wait for the next one before the caller hears of it: only one of a short chunk,
  /// with more chunks queued, while the oldest result waiting is younger than max_result_delay.
  bool hold(std::int64_t duration_ns, std::int64_t now_ns) {
    const std::int64_t limit = layout_.max_result_delay.count();
    if (duration_ns >= limit) return false;
    if (channel_.header().task_head.load(std::memory_order_acquire) - task_tail_ <= layout_.refill_below) return false;
    if (held_since_ns_ == 0) held_since_ns_ = now_ns;
    return now_ns - held_since_ns_ < limit;
  }

  /// Before the worker waits or leaves: the caller must see the results it holds.
  void wake_caller_if_holding() {
    std::lock_guard lock(publish_mutex_);
    if (held_since_ns_ != 0) wake_caller();
  }

  /// Wakes the caller's loop if it sleeps: every result published so far is then seen.
  void wake_caller() {
    held_since_ns_ = 0;
    if (channel_.header().parent_armed.exchange(0, std::memory_order_seq_cst) != 0) ::eventfd_write(layout_.eventfd, 1);
  }

  const PoolLayout& layout_;
  Channel channel_;
  int socket_;
  std::uint64_t task_tail_ = 0;
  std::uint64_t result_head_ = 0;
  std::int64_t held_since_ns_ = 0;  // when the oldest result the caller has not been woken for landed; 0: none
  std::unordered_map<std::uint64_t, Mapping> segments_;
  std::vector<BoundArray> arrays_;
  std::vector<std::byte> out_;
  std::string error_text_;
  std::mutex publish_mutex_;
};

/// The spdlog sink of a worker process: every line goes to the caller through the result ring.
class ChannelLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ChannelLogSink(WorkerProcess& worker) : worker_(worker) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    worker_.publish_log(msg.level, std::string_view(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  WorkerProcess& worker_;
};

}  // namespace

void worker_main(const PoolLayout& layout, std::size_t slot, int socket, pid_t fork_server) {
  // Die with the fork server (which dies with the caller); check it did not die before the arming.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != fork_server) ::_exit(1);
  const std::string name = fmt::format("mpaio-w{}", slot);
  ::prctl(PR_SET_NAME, name.c_str());
  if (!layout.pinned_cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(layout.pinned_cpus[slot % layout.pinned_cpus.size()], &set);
    ::sched_setaffinity(0, sizeof set, &set);
  }
  try {
    WorkerProcess worker(layout, slot, socket);
    auto logger = std::make_shared<spdlog::logger>(name, std::make_shared<ChannelLogSink>(worker));
    spdlog::set_default_logger(std::move(logger));
    worker.run();
  } catch (...) {
    ::_exit(72);  // a mapping or the socket failed: the caller sees the exit code
  }
}

}  // namespace mpaio::detail
