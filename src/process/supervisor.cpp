#include "process/supervisor.hpp"

#include <cstring>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "mpaio/detail/chunk_call.hpp"
#include "process/child_setup.hpp"
#include "process/fault_injection.hpp"
#include "process/process_signal.hpp"

namespace mpaio::detail {

std::string ExitReport::text() const {
  if (!known) return "died (no exit status from the fork server)";
  if (signal != 0) {
    const char* name = ::sigdescr_np(signal);
    std::string out = fmt::format("killed by signal {} ({})", signal, name != nullptr ? name : "unknown");
    if (!backtrace.empty()) out += " at:" + backtrace;
    return out;
  }
  const std::string_view meaning = child_exit_meaning(code);
  return meaning.empty() ? fmt::format("exited with code {}", code) : fmt::format("exited with code {} ({})", code, meaning);
}

namespace {

/// The wait before starting a slot's next process after `failures` consecutive failures: none for the first
/// two (a crash is replaced at once), then 10 ms growing fourfold up to 1 s, so that a process that cannot
/// start never makes a tight loop of forks.
std::int64_t backoff_ns(unsigned failures) {
  if (failures < 2) return 0;
  std::int64_t ns = 10'000'000;
  for (unsigned i = 2; i < failures && ns < 1'000'000'000; ++i) ns *= 4;
  return std::min<std::int64_t>(ns, 1'000'000'000);
}

}  // namespace

/// The watchers of one attach(); shared with pending handlers so that they outlive detach().
struct Supervisor::Watch {
  explicit Watch(const asio::any_io_executor& loop) : loop(loop), server(loop), timer(loop) {}
  bool active = true;
  asio::any_io_executor loop;
  asio::posix::stream_descriptor server;
  std::vector<std::unique_ptr<asio::posix::stream_descriptor>> processes;
  asio::steady_timer timer;
  std::int64_t timer_at_ns = 0;  // 0: not set
};

Supervisor::Supervisor(ForkServer& server, std::vector<std::uint32_t> entries, Events& events,
                       std::chrono::milliseconds spawn_timeout, std::chrono::milliseconds report_timeout)
    : server_(server),
      events_(events),
      spawn_timeout_(spawn_timeout),
      report_timeout_(report_timeout),
      slots_(entries.size()) {
  for (std::size_t i = 0; i < entries.size(); ++i) slots_[i].entry = entries[i];
}

Supervisor::~Supervisor() { detach(); }

void Supervisor::start(std::uint32_t slot, std::chrono::milliseconds timeout) {
  adopt(slot, server_.spawn(slots_.at(slot).entry, slot, timeout));
}

void Supervisor::adopt(std::uint32_t slot, ChildProcess child) {
  Slot& s = slots_.at(slot);
  s.state = State::running;
  s.seq = child.seq;
  s.pid = child.pid;
  s.pidfd = std::move(child.pidfd);
  s.socket = std::move(child.socket);
  s.healthy = false;
  s.kill_at_ns = 0;
  s.report_by_ns = 0;
  s.report.reset();
  try {
    inject(ProcessFault::adopt);
    if (watch_) watch_process(slot);
  } catch (const std::exception& e) {
    // A process nobody watches must not live: kill it; its exit, which the fork server reports on the socket
    // we do watch, empties the slot (and counts as a failure of the slot).
    spdlog::warn("mpaio: cannot watch the new process {} of slot {}: {}; killing it", s.pid, slot, e.what());
    signal_process(s.pidfd.get(), SIGKILL);
    s.state = State::exiting;
    s.report_by_ns = monotonic_ns() + std::chrono::nanoseconds(report_timeout_).count();
    schedule();
  }
}

void Supervisor::replace(std::uint32_t slot) {
  Slot& s = slots_.at(slot);
  if (s.state != State::empty) return;
  s.state = State::starting;
  s.seq = 0;
  s.spawn_at_ns = monotonic_ns() + backoff_ns(s.failures);
  if (backoff_ns(s.failures) == 0) {
    send_spawn(slot);
  } else {
    schedule();
  }
}

void Supervisor::send_spawn(std::uint32_t slot) {
  Slot& s = slots_[slot];
  s.spawn_at_ns = 0;
  s.answer_by_ns = monotonic_ns() + std::chrono::nanoseconds(spawn_timeout_).count();
  s.seq = server_.request_spawn(s.entry, slot);
  if (!server_.alive()) {
    handle_events();  // the failure is already queued
  } else {
    schedule();
  }
}

void Supervisor::mark_healthy(std::uint32_t slot) noexcept {
  Slot& s = slots_[slot];
  s.healthy = true;
  s.failures = 0;
}

void Supervisor::attach(const asio::any_io_executor& loop) {
  detach();
  watch_ = std::make_shared<Watch>(loop);
  watch_->server.assign(dup_fd(server_.socket()).release());
  watch_server();
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].state == State::running) watch_process(i);
  }
  poll();
}

void Supervisor::detach() noexcept {
  if (!watch_) return;
  watch_->active = false;
  std::error_code ignored;
  watch_->server.cancel(ignored);
  for (auto& p : watch_->processes) {
    if (p) p->cancel(ignored);
  }
  watch_->timer.cancel();
  watch_.reset();
}

void Supervisor::poll() {
  handle_events();
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].state == State::running && process_exited(slots_[i].pidfd.get())) on_exit_seen(i);
  }
  run_deadlines();
}

bool Supervisor::signal(std::uint32_t slot, int sig) noexcept {
  const Slot& s = slots_[slot];
  return s.state == State::running && signal_process(s.pidfd.get(), sig);
}

void Supervisor::terminate(std::uint32_t slot, std::chrono::milliseconds grace) {
  Slot& s = slots_.at(slot);
  if (!signal(slot, SIGTERM)) return;
  s.kill_at_ns = monotonic_ns() + std::chrono::nanoseconds(grace).count();
  schedule();
}

void Supervisor::kill(std::uint32_t slot) noexcept {
  Slot& s = slots_[slot];
  if (s.state == State::running) signal_process(s.pidfd.get(), SIGKILL);
  s.kill_at_ns = 0;
}

void Supervisor::watch_process(std::uint32_t slot) {
  auto& processes = watch_->processes;
  if (processes.size() <= slot) processes.resize(slot + 1);
  processes[slot] = std::make_unique<asio::posix::stream_descriptor>(watch_->loop, dup_fd(slots_[slot].pidfd.get()).release());
  processes[slot]->async_wait(asio::posix::stream_descriptor::wait_read,
                              [this, w = watch_, slot, seq = slots_[slot].seq](const std::error_code& ec) {
                                if (ec || !w->active || slots_[slot].seq != seq) return;
                                if (slots_[slot].state == State::running) on_exit_seen(slot);
                              });
}

void Supervisor::watch_server() {
  watch_->server.async_wait(asio::posix::stream_descriptor::wait_read, [this, w = watch_](const std::error_code& ec) {
    if (ec || !w->active) return;
    handle_events();
    if (w->active && server_.alive()) watch_server();
  });
}

void Supervisor::handle_events() {
  for (ForkServerEvent& event : server_.read_events()) {
    if (auto* result = std::get_if<SpawnResult>(&event)) {
      const std::uint32_t slot = result->slot;
      if (slot >= slots_.size() || slots_[slot].state != State::starting || slots_[slot].seq != result->seq) {
        continue;  // not ours (any more): a child in it dies with its descriptors' owner, the fork server
      }
      if (result->child) {
        adopt(slot, std::move(*result->child));
        if (slots_[slot].state == State::running) events_.on_started(slot);
      } else {
        Slot& s = slots_[slot];
        s.state = State::empty;
        ++s.failures;
        events_.on_spawn_failed(slot, fmt::format("fork failed: {}{}", std::strerror(result->error),
                                                  server_.alive() ? "" : " (the fork server is gone)"));
      }
    } else {
      auto& exit = std::get<ChildExitReport>(event);
      if (exit.slot >= slots_.size() || slots_[exit.slot].seq != exit.seq) continue;
      Slot& s = slots_[exit.slot];
      if (s.state != State::running && s.state != State::exiting) continue;
      ExitReport report{exit.pid, exit.code, exit.signal, true, std::move(exit.backtrace)};
      if (s.state == State::running) {
        s.state = State::exiting;  // its pidfd event has not been handled yet
      }
      finish(exit.slot, std::move(report));
    }
  }
  if (!server_.alive()) {  // nothing will answer the requests in flight
    for (std::uint32_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].state == State::starting && slots_[i].spawn_at_ns == 0) {
        slots_[i].state = State::empty;
        ++slots_[i].failures;
        events_.on_spawn_failed(i, "the fork server is gone");
      }
    }
  }
}

void Supervisor::on_exit_seen(std::uint32_t slot) {
  Slot& s = slots_[slot];
  s.state = State::exiting;
  s.kill_at_ns = 0;
  s.report_by_ns = monotonic_ns() + std::chrono::nanoseconds(report_timeout_).count();
  handle_events();  // the report may be there already
  if (s.state == State::exiting) schedule();
}

void Supervisor::finish(std::uint32_t slot, ExitReport report) {
  Slot& s = slots_[slot];
  s.state = State::empty;
  s.pidfd.reset();
  s.socket.reset();
  s.kill_at_ns = 0;
  s.report_by_ns = 0;
  if (!s.healthy) ++s.failures;
  if (watch_ && slot < watch_->processes.size() && watch_->processes[slot]) {
    std::error_code ignored;
    watch_->processes[slot]->cancel(ignored);
  }
  events_.on_exited(slot, report);
}

void Supervisor::run_deadlines() {
  const std::int64_t now = monotonic_ns();
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.state == State::starting && s.spawn_at_ns != 0 && now >= s.spawn_at_ns) send_spawn(i);
    if (s.state == State::starting && s.spawn_at_ns == 0 && now >= s.answer_by_ns) {
      server_.cancel(s.seq);  // a late answer's child is killed
      s.state = State::empty;
      ++s.failures;
      events_.on_spawn_failed(i, fmt::format("the fork server (pid {}) did not answer within {} ms", server_.pid(),
                                             spawn_timeout_.count()));
    }
    if (s.state == State::running && s.kill_at_ns != 0 && now >= s.kill_at_ns) kill(i);
    if (s.state == State::exiting && now >= s.report_by_ns) {
      finish(i, ExitReport{s.pid, -1, 0, false, {}});  // the fork server did not say in time
    }
  }
  schedule();
}

void Supervisor::schedule() {
  if (!watch_) return;
  std::int64_t next = 0;
  for (const Slot& s : slots_) {
    const std::int64_t starting = s.spawn_at_ns != 0 ? s.spawn_at_ns : s.answer_by_ns;
    for (std::int64_t at : {s.state == State::starting ? starting : 0, s.state == State::running ? s.kill_at_ns : 0,
                            s.state == State::exiting ? s.report_by_ns : 0}) {
      if (at != 0 && (next == 0 || at < next)) next = at;
    }
  }
  if (next == 0 || (watch_->timer_at_ns != 0 && watch_->timer_at_ns <= next)) return;
  watch_->timer_at_ns = next;
  watch_->timer.expires_after(std::chrono::nanoseconds(std::max<std::int64_t>(0, next - monotonic_ns())));
  watch_->timer.async_wait([this, w = watch_](const std::error_code& ec) {
    if (ec || !w->active) return;  // cancelled: an earlier deadline replaced it, or detached
    w->timer_at_ns = 0;
    run_deadlines();
  });
}

}  // namespace mpaio::detail
