// The loop of a stage replica: construct the stage, then item after item until told to stop.

#include "pipeline/stage_process.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "mpaio/detail/chunk_call.hpp"
#include "process/child_setup.hpp"
#include "process/chunk_protocol.hpp"

namespace mpaio::detail {

namespace {

class Replica {
 public:
  Replica(const StageProcessSettings& settings, const StageSpec& stage, unsigned replica, std::size_t slot)
      : settings_(settings),
        stage_(stage),
        replica_(replica),
        channel_(settings.channel(slot)),
        tasks_(channel_.header().tasks, channel_.task_ring()),
        results_(channel_.header().results, channel_.result_ring()) {}

  int run() {
    std::unique_ptr<StageInstance> instance;
    try {
      instance = stage_.construct(stage_.config);
    } catch (...) {
      std::string type, message;
      describe_current_exception(type, message);
      publish_failure(StageResultKind::init_failed, 0, 0, 0, 0, type, message);
      ring_caller();
      return static_cast<int>(ChildExit::stage_init_failed);
    }
    publish(StageResultKind::ready, {});
    ring_caller();
    auto& h = channel_.header();
    std::vector<std::span<const std::byte>> inputs;
    for (;;) {
      if (held_since_ns_ != 0 && !tasks_.pending()) ring_caller();  // about to wait: hand over what is held
      wait_until(h.replica_wake, [&] { return tasks_.pending(); }, settings_.spin.count());
      RecordReader::Record record;
      if (tasks_.peek(record) != RecordReader::Status::ready) return static_cast<int>(ChildExit::protocol_error);
      if (record.kind == static_cast<std::uint32_t>(StageTaskKind::stop)) break;
      StageItem item{};
      if (record.kind != static_cast<std::uint32_t>(StageTaskKind::item) || !parse(record.body, item, inputs)) {
        return static_cast<int>(ChildExit::protocol_error);
      }
      handle(*instance, item, inputs);
    }
    instance.reset();  // the stage's destructor runs here, within the caller's grace
    return static_cast<int>(ChildExit::ok);
  }

 private:
  /// Splits an item record into its inputs; false when the sizes do not add up.
  static bool parse(std::span<const std::byte> body, StageItem& item, std::vector<std::span<const std::byte>>& inputs) {
    if (body.size() < sizeof item) return false;
    std::memcpy(&item, body.data(), sizeof item);
    body = body.subspan(sizeof item);
    if (item.inputs > 64 || body.size() < item.inputs * sizeof(std::uint32_t)) return false;
    std::vector<std::uint32_t> sizes(item.inputs);
    std::memcpy(sizes.data(), body.data(), item.inputs * sizeof(std::uint32_t));
    body = body.subspan(item.inputs * sizeof(std::uint32_t));
    inputs.clear();
    for (std::uint32_t size : sizes) {
      if (size > body.size()) return false;
      inputs.push_back(body.first(size));
      body = body.subspan(size);
    }
    return body.empty();
  }

  void handle(StageInstance& instance, const StageItem& item, std::span<const std::span<const std::byte>> inputs) {
    auto& h = channel_.header();
    const ItemContext context{item.item, item.attempt, replica_, StopToken(&h.stop_requested)};
    out_.clear();
    std::string type, message;
    const std::int64_t start = monotonic_ns();
    h.running_since_ns.store(start, std::memory_order_relaxed);
    h.running.store(item.item + 1, std::memory_order_release);
    bool failed = false;
    try {
      instance.process(inputs, context, out_);
    } catch (...) {
      failed = true;
      describe_current_exception(type, message);
    }
    const std::int64_t end = monotonic_ns();
    h.running.store(0, std::memory_order_release);
    // The item's record is done with (its inputs were decoded): its room goes back to the caller before
    // the result does, so that the caller, reading the result, finds room for the next item.
    const bool more = tasks_.more_after_peeked();
    tasks_.consume();
    tasks_.publish();
    if (!failed && out_.size() > settings_.max_item_bytes) {
      failed = true;
      type = kResultTooLarge;
      message = "its result is " + std::to_string(out_.size()) + " bytes, over PipelineOptions::max_item_bytes (" +
                std::to_string(settings_.max_item_bytes) + ")";
      // A pool array's transfer is never this large: out_ holds plain bytes, nothing to release.
    }
    if (failed) {
      publish_failure(StageResultKind::failed, item.item, item.attempt, start, end, type, message);
    } else {
      const StageDone done{item.item, item.attempt, 0, start, end};
      publish(StageResultKind::done, {bytes_of(done), out_});
    }
    if (!hold(end - start, end, more)) ring_caller();
  }

  /// Whether a result may wait for the next ones before the caller hears of it: only one of a short item,
  /// with more items queued, while the oldest result waiting is younger than max_result_delay.
  bool hold(std::int64_t duration_ns, std::int64_t now_ns, bool more_queued) {
    const std::int64_t limit = settings_.max_result_delay.count();
    if (duration_ns >= limit || !more_queued) return false;
    if (held_since_ns_ == 0) held_since_ns_ = now_ns;
    return now_ns - held_since_ns_ < limit;
  }

  /// Wakes the caller's loop if it sleeps: every result written so far is then seen.
  void ring_caller() {
    held_since_ns_ = 0;
    ring(channel_.header().caller_wake, settings_.eventfd);
  }

  void publish_failure(StageResultKind kind, std::uint64_t item, std::uint32_t attempt, std::int64_t start,
                       std::int64_t end, std::string_view type, std::string_view message) {
    type = type.substr(0, kMaxErrorText);
    message = message.substr(0, kMaxErrorText);
    const StageFailed failed{item, attempt, static_cast<std::uint32_t>(type.size()), start, end,
                             static_cast<std::uint32_t>(message.size()), 0};
    publish(kind, {bytes_of(failed), bytes_of(type), bytes_of(message)});
  }

  /// Writes a record, waiting for room: the caller, rung first, drains the ring (it hears of everything
  /// held before we wait, or it could sleep while we wait for it).
  void publish(StageResultKind kind, std::initializer_list<std::span<const std::byte>> parts) {
    std::size_t body = 0;
    for (auto part : parts) body += part.size();
    while (!results_.try_write(static_cast<std::uint32_t>(kind), parts)) {
      ring_caller();
      wait_until(channel_.header().replica_wake, [&] { return results_.fits(body); }, settings_.spin.count());
    }
  }

  const StageProcessSettings& settings_;
  const StageSpec& stage_;
  unsigned replica_;
  StageChannel channel_;
  RecordReader tasks_;
  RecordWriter results_;
  std::vector<std::byte> out_;
  std::int64_t held_since_ns_ = 0;  // when the oldest result the caller was not woken for was written; 0: none
};

}  // namespace

int stage_process_main(const StageProcessSettings& settings, const StageSpec& stage, unsigned replica,
                       const ChildContext& context) {
  return Replica(settings, stage, replica, context.slot).run();
}

}  // namespace mpaio::detail
