#include "run_gate.hpp"

#include <algorithm>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include <asio/cancellation_type.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "mpaio/error.hpp"

namespace mpaio::detail {

namespace {

/// A run waiting for its turn. Its timer never expires: it completes when the turn comes (the run ending
/// before it cancels the timer, on the waiter's loop) or when the waiting run is cancelled.
struct Waiter {
  explicit Waiter(const asio::any_io_executor& run_loop) : loop(run_loop), wake(run_loop) {
    wake.expires_at(asio::steady_timer::time_point::max());
  }
  const asio::any_io_executor loop;  // the waiting run's loop: the only place `wake` is touched
  asio::steady_timer wake;
  bool granted = false;  // the turn was handed to this run (guarded by the gate's mutex)
};

/// The runs of one executor: whether one holds it, from which thread it took it, and who waits.
struct Line {
  bool held = false;
  std::thread::id holder_thread;
  std::deque<std::shared_ptr<Waiter>> waiting;
};

/// Lines exist only while their executor is held, so a new executor at a freed address starts clean.
struct Lines {
  std::mutex mutex;
  std::unordered_map<const Executor*, Line> by_executor;
};

Lines& lines() {
  static Lines instance;
  return instance;
}

/// Hands the executor to the first waiting run, or frees it. Called with the mutex held.
void pass_on(Lines& all, const Executor* executor) {
  auto it = all.by_executor.find(executor);
  if (it == all.by_executor.end()) return;
  Line& line = it->second;
  if (line.waiting.empty()) {
    all.by_executor.erase(it);
    return;
  }
  std::shared_ptr<Waiter> next = std::move(line.waiting.front());
  line.waiting.pop_front();
  next->granted = true;
  line.holder_thread = {};  // set by the waiter when it resumes
  // The timer belongs to the waiter's loop: cancel it there (posting is thread-safe, touching it is not).
  asio::post(next->loop, [next] { next->wake.cancel(); });
}

/// Takes a waiter out of its line: a cancelled or destroyed run. If the turn reached it meanwhile, passes it on.
void withdraw(const Executor* executor, const std::shared_ptr<Waiter>& waiter) noexcept {
  Lines& all = lines();
  std::lock_guard lock(all.mutex);
  if (waiter->granted) {
    pass_on(all, executor);
    return;
  }
  auto it = all.by_executor.find(executor);
  if (it == all.by_executor.end()) return;
  auto& waiting = it->second.waiting;
  waiting.erase(std::remove(waiting.begin(), waiting.end(), waiter), waiting.end());
}

}  // namespace

RunGate::Turn& RunGate::Turn::operator=(Turn&& other) noexcept {
  if (this != &other) {
    Turn ending(std::move(*this));
    executor_ = other.executor_;
    other.executor_ = nullptr;
  }
  return *this;
}

RunGate::Turn::~Turn() {
  if (executor_ == nullptr) return;
  Lines& all = lines();
  std::lock_guard lock(all.mutex);
  pass_on(all, executor_);
}

asio::awaitable<RunGate::Turn> RunGate::take(const Executor& executor) {
  const asio::any_io_executor loop = co_await asio::this_coro::executor;
  const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  // A cancellation emitted before now reached no operation: only the state remembers it.
  if (state.cancelled() != asio::cancellation_type::none) {
    throw RunCancelled("WorkerOrchestrator::run: cancelled before it started");
  }
  Lines& all = lines();
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(all.mutex);
    Line& line = all.by_executor[&executor];
    if (!line.held) {
      line.held = true;
      line.holder_thread = std::this_thread::get_id();
      co_return Turn(&executor);
    }
    waiter = std::make_shared<Waiter>(loop);
    line.waiting.push_back(waiter);
  }
  // Leaves the line if the coroutine is destroyed while it waits (its loop destroyed) or is cancelled.
  struct LeaveUnlessServed {
    const Executor* executor;
    std::shared_ptr<Waiter> waiter;
    bool served = false;
    ~LeaveUnlessServed() {
      if (!served) withdraw(executor, waiter);
    }
  } leave{&executor, waiter};

  std::error_code ignored;
  co_await waiter->wake.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  {
    std::lock_guard lock(all.mutex);
    if (waiter->granted) {
      all.by_executor[&executor].holder_thread = std::this_thread::get_id();
      leave.served = true;
    }
  }
  Turn turn = leave.served ? Turn(&executor) : Turn();
  if (!leave.served || state.cancelled() != asio::cancellation_type::none) {
    // The timer only completes early when the turn comes or the run is cancelled: this is the second.
    throw RunCancelled(fmt::format("WorkerOrchestrator::run: cancelled while waiting for another run on the {} executor to end",
                                   executor.name()));
  }
  co_return turn;
}

bool RunGate::held_from_this_thread(const Executor& executor) {
  Lines& all = lines();
  std::lock_guard lock(all.mutex);
  const auto it = all.by_executor.find(&executor);
  return it != all.by_executor.end() && it->second.held && it->second.holder_thread == std::this_thread::get_id();
}

}  // namespace mpaio::detail
