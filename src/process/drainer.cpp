#include "process/drainer.hpp"

#include <unistd.h>

#include <algorithm>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include "mpaio/detail/chunk_call.hpp"
#include "mpaio/detail/unique_fd.hpp"

namespace mpaio::detail {

/// The watchers of one start(); shared with pending handlers so that they outlive stop().
struct Drainer::Watch {
  explicit Watch(const asio::any_io_executor& loop) : wake(loop), held(loop) {}
  bool active = true;
  asio::posix::stream_descriptor wake;  // a duplicate of the eventfd
  asio::steady_timer held;              // collects records producers hold
  bool held_pending = false;
  std::int64_t drained_ns = 0;          // when collect() last ran
};

Drainer::Drainer(int eventfd, std::chrono::nanoseconds hold_limit, Owner& owner)
    : eventfd_(eventfd), hold_limit_(hold_limit), owner_(owner) {}

Drainer::~Drainer() { stop(); }

void Drainer::set_source(std::size_t index, const Source& source) {
  if (sources_.size() <= index) {
    sources_.resize(index + 1);
    enabled_.resize(index + 1, false);
  }
  sources_[index] = source;
  enabled_[index] = true;
  if (watch_) arm(*source.doorbell);
}

void Drainer::remove_source(std::size_t index) noexcept {
  if (index < enabled_.size()) enabled_[index] = false;
}

void Drainer::start(const asio::any_io_executor& loop) {
  stop();
  std::uint64_t stale = 0;
  (void)::read(eventfd_, &stale, sizeof stale);  // wake-ups from before this start
  watch_ = std::make_shared<Watch>(loop);
  watch_->wake.assign(dup_fd(eventfd_).release());
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    if (enabled_[i]) arm(*sources_[i].doorbell);
  }
  wait_for_ring();
  collect();  // what was published before the arming
}

void Drainer::stop() noexcept {
  if (!watch_) return;
  watch_->active = false;
  std::error_code ignored;
  watch_->wake.cancel(ignored);
  watch_->held.cancel();
  watch_.reset();
}

bool Drainer::running() const noexcept { return watch_ != nullptr; }

void Drainer::wait_for_ring() {
  watch_->wake.async_wait(asio::posix::stream_descriptor::wait_read, [this, w = watch_](const std::error_code& ec) {
    if (ec || !w->active) return;
    std::uint64_t count = 0;
    (void)::read(eventfd_, &count, sizeof count);
    collect();
    if (w->active) wait_for_ring();
  });
}

bool Drainer::drain(std::size_t index) {
  if (index >= sources_.size() || !enabled_[index]) return true;
  Source& source = sources_[index];
  bool consumed = false;
  bool go_on = true;
  RecordReader::Record record;
  while (go_on && enabled_[index]) {
    const auto status = source.reader.peek(record);
    if (status == RecordReader::Status::empty) break;
    if (status == RecordReader::Status::malformed) {
      enabled_[index] = false;  // else collect() would find the same record pending, for ever
      owner_.on_malformed(index);
      return true;
    }
    go_on = owner_.on_record(index, record);
    source.reader.consume();
    consumed = true;
  }
  if (consumed) {
    source.reader.publish();
    notify(*source.producer_wake);  // it may wait for space
  }
  return go_on;
}

bool Drainer::pending() const noexcept {
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    if (enabled_[i] && sources_[i].reader.pending()) return true;
  }
  return false;
}

void Drainer::collect() {
  const std::shared_ptr<Watch> w = watch_;
  if (!w) return;
  w->drained_ns = monotonic_ns();
  for (;;) {
    for (std::size_t i = 0; i < sources_.size() && w->active; ++i) {
      if (!drain(i)) return;
    }
    if (!w->active) return;
    for (std::size_t i = 0; i < sources_.size(); ++i) {
      if (enabled_[i]) arm(*sources_[i].doorbell);
    }
    if (!pending()) break;  // a record published before the arming rang nothing: look once more
  }
  if (owner_.may_hold()) watch_held();
}

void Drainer::expect_held() {
  if (watch_ && watch_->active) watch_held();
}

/// A producer holds records while it has more work queued, guessing from the last one that the next will
/// be short as well. When that guess is wrong, this timer still delivers them: it collects once nothing has
/// for hold_limit. It is not re-armed per wake-up (a timerfd update each time): it fires at most once per
/// hold_limit and then waits for the rest of the period.
void Drainer::watch_held() {
  if (watch_->held_pending) return;
  watch_->held_pending = true;
  const std::int64_t period = hold_limit_.count();
  const std::int64_t due = watch_->drained_ns + period - monotonic_ns();
  watch_->held.expires_after(std::chrono::nanoseconds(std::clamp<std::int64_t>(due, 0, period)));
  watch_->held.async_wait([this, w = watch_, period](const std::error_code& ec) {
    w->held_pending = false;
    if (ec || !w->active) return;
    if (monotonic_ns() - w->drained_ns >= period) {
      collect();  // re-arms when needed
    } else if (owner_.may_hold()) {
      watch_held();
    }
  });
}

}  // namespace mpaio::detail
