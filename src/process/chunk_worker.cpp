// The loop of a chunk worker process: take task records, run chunks, publish result records.

#include "process/chunk_worker.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "mpaio/detail/chunk_call.hpp"
#include "mpaio/detail/worker_registry.hpp"
#include "process/child_setup.hpp"
#include "process/segment_binder.hpp"

namespace mpaio::detail {

namespace {

class WorkerProcess {
 public:
  WorkerProcess(const ChunkWorkerSettings& settings, const ChildContext& context)
      : settings_(settings),
        channel_(settings.channel(context.slot)),
        socket_(context.socket),
        tasks_(channel_.header().tasks),
        results_(channel_.header().results, channel_.ring()) {}

  [[noreturn]] void run() {
    auto& h = channel_.header();
    for (;;) {
      if (tasks_.empty()) ring_caller_if_holding();  // about to wait: the caller must see what we hold
      wait_until(h.worker_wake, [&] { return !tasks_.empty(); }, settings_.worker_spin.count());
      const TaskRecord task = *tasks_.try_pop();
      switch (task.kind) {
        case TaskKind::chunk: run_chunk(task.chunk); break;
        case TaskKind::run_setup: set_up_run(task.setup.run); break;
        case TaskKind::stop:
          ring_caller_if_holding();
          ::_exit(static_cast<int>(ChildExit::ok));
        default: ::_exit(static_cast<int>(ChildExit::protocol_error));
      }
    }
  }

  /// Sends one line logged in this process to the caller, in order with the results.
  void publish_log(spdlog::level::level_enum level, std::string_view text) {
    text = text.substr(0, kMaxErrorText);
    const LogLine line{static_cast<std::uint32_t>(level), 0};
    std::lock_guard lock(publish_mutex_);
    write_record(ResultKind::log, {bytes_of(line), bytes_of(text)});
    ring_caller();
  }

 private:
  void set_up_run(std::uint64_t run) {
    RunManifest manifest = segments_.receive(socket_, run);
    spdlog::set_level(static_cast<spdlog::level::level_enum>(manifest.log_level));
    params_ = std::move(manifest.params);
    decoded_params_.assign(params_.size(), nullptr);
  }

  /// The registered worker type `id` (the last one is remembered: a run mostly names one or two).
  const WorkerType* worker_type(std::uint64_t id) {
    if (last_type_ == nullptr || last_type_->id != id) last_type_ = find_worker_type(id);
    return last_type_;
  }

  void run_chunk(const ChunkOrder& order) {
    const std::vector<BoundArray>& arrays = segments_.arrays();
    const WorkerType* type = worker_type(order.worker_type);
    std::string refused;
    if (type == nullptr) {
      refused = fmt::format("worker type id {:#018x} is not registered in worker process {}: it is not a worker "
                            "type of this program",
                            order.worker_type, ::getpid());
    } else if (order.array >= arrays.size() || order.start > order.end || order.end > arrays[order.array].size) {
      refused = fmt::format("chunk [{}, {}) of array {} is outside the bound arrays", order.start, order.end, order.array);
    } else if (order.params != kNoParams && order.params >= params_.size()) {
      refused = fmt::format("chunk [{}, {}) names parameters {} of {}", order.start, order.end, order.params, params_.size());
    }
    if (!refused.empty()) {
      const std::int64_t now = monotonic_ns();
      publish_failure(order.chunk_id, now, now, "mpaio::InvalidArgument", refused, {});
      return;
    }
    const BoundArray& array = arrays[order.array];
    ParamsRef params;
    if (order.params != kNoParams) {
      const std::string& bytes = params_[order.params];
      params = ParamsRef{nullptr, {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}, &decoded_params_[order.params]};
    }
    out_.clear();
    auto& h = channel_.header();
    const ChunkCall call{array.data, array.shape, Range{order.start, order.end}, &out_, &h.stop_requested,
                         order.params != kNoParams ? &params : nullptr};
    h.running_since_ns.store(monotonic_ns(), std::memory_order_relaxed);
    h.running.store(order.chunk_id + 1, std::memory_order_release);  // for the caller's timeouts and blame
    const ChunkExecution done = execute_chunk(type->run, call);
    h.running.store(0, std::memory_order_release);
    if (done.failed) {
      publish_failure(order.chunk_id, done.start_ns, done.end_ns, done.error_type, done.error_message, done.failure_payload);
    } else if (out_.size() > settings_.max_result_bytes) {
      publish_failure(order.chunk_id, done.start_ns, done.end_ns, "mpaio::ResultTooLarge",
                      fmt::format("the encoded result is {} bytes, over the limit of {} bytes "
                                  "(ProcessPoolOptions::max_result_bytes)",
                                  out_.size(), settings_.max_result_bytes),
                      {});
    } else {
      const ChunkDone header{order.chunk_id, done.start_ns, done.end_ns};
      std::lock_guard lock(publish_mutex_);
      write_record(ResultKind::done, {bytes_of(header), out_});
      if (!hold(done.end_ns - done.start_ns, done.end_ns)) ring_caller();
    }
  }

  void publish_failure(std::uint64_t id, std::int64_t start, std::int64_t end, std::string_view type,
                       std::string_view message, std::span<const std::byte> payload) {
    type = type.substr(0, kMaxErrorText);
    message = message.substr(0, kMaxErrorText);
    if (sizeof(ChunkFailed) + type.size() + message.size() + payload.size() > max_body()) payload = {};
    const ChunkFailed header{id,
                             start,
                             end,
                             static_cast<std::uint32_t>(type.size()),
                             static_cast<std::uint32_t>(message.size()),
                             static_cast<std::uint32_t>(payload.size()),
                             0};
    std::lock_guard lock(publish_mutex_);
    write_record(ResultKind::failed, {bytes_of(header), bytes_of(type), bytes_of(message), payload});
    ring_caller();
  }

  [[nodiscard]] std::size_t max_body() const noexcept { return channel_.ring().size() / 2 - sizeof(RecordHeader); }

  /// Writes a record, waiting for room. A full ring is the caller's to drain: it hears of everything we
  /// hold before we wait, or it could sleep while we wait for it.
  void write_record(ResultKind kind, std::initializer_list<std::span<const std::byte>> parts) {
    std::size_t body = 0;
    for (auto part : parts) body += part.size();
    while (!results_.try_write(static_cast<std::uint32_t>(kind), parts)) {
      ring_caller();
      wait_until(channel_.header().worker_wake, [&] { return results_.fits(body); }, settings_.worker_spin.count());
    }
  }

  /// Whether a result may wait for the next one before the caller hears of it: only one of a short chunk,
  /// with more chunks queued, while the oldest result waiting is younger than max_result_delay.
  bool hold(std::int64_t duration_ns, std::int64_t now_ns) {
    const std::int64_t limit = settings_.max_result_delay.count();
    if (duration_ns >= limit || tasks_.available() <= settings_.refill_below) return false;
    if (held_since_ns_ == 0) held_since_ns_ = now_ns;
    return now_ns - held_since_ns_ < limit;
  }

  void ring_caller_if_holding() {
    std::lock_guard lock(publish_mutex_);
    if (held_since_ns_ != 0) ring_caller();
  }

  /// Wakes the caller's loop if it sleeps: every result published so far is then seen.
  void ring_caller() {
    held_since_ns_ = 0;
    ring(channel_.header().caller_wake, settings_.eventfd);
  }

  const ChunkWorkerSettings& settings_;
  Channel channel_;
  int socket_;
  TaskRingReader<TaskRecord, kTaskSlots> tasks_;
  RecordWriter results_;
  SegmentCache segments_;
  std::vector<std::string> params_;                    // this run's encoded parameters
  std::vector<std::shared_ptr<void>> decoded_params_;  // decoded by the worker type on first use
  const WorkerType* last_type_ = nullptr;
  std::int64_t held_since_ns_ = 0;  // when the oldest result the caller was not woken for landed; 0: none
  std::vector<std::byte> out_;
  std::mutex publish_mutex_;  // `process` may log from threads of its own
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

int chunk_worker_main(const ChunkWorkerSettings& settings, const ChildContext& context) {
  try {
    WorkerProcess worker(settings, context);
    // The inherited default logger is leaked, not destroyed: its sinks may close descriptors whose numbers
    // this process now uses for something else.
    new std::shared_ptr<spdlog::logger>(spdlog::default_logger());
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(fmt::format("mpaio-w{}", context.slot),
                                                                std::make_shared<ChannelLogSink>(worker)));
    worker.run();
  } catch (...) {
  }
  return static_cast<int>(ChildExit::setup_failed);
}

}  // namespace mpaio::detail
