#pragma once
// The processes of a set of slots, each started from the fork server and watched: its pidfd says at once
// when it has exited, the fork server says how (exit status, signal, backtrace), and a slot whose process is
// gone is started again on request, with a back-off when its processes keep failing. Every step is an
// asynchronous step on an Asio loop; between loops (between runs) nothing is watched, and poll() catches up
// without blocking.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "mpaio/detail/unique_fd.hpp"
#include "process/fork_server.hpp"

namespace mpaio::detail {

/// How a supervised process ended.
struct ExitReport {
  pid_t pid = 0;
  int code = -1;          ///< exit status, -1 when killed or unknown
  int signal = 0;         ///< the signal that killed it
  bool known = false;     ///< false when the fork server never said
  std::string backtrace;  ///< where a fatal signal struck, when the crash reporter caught it

  [[nodiscard]] bool clean() const noexcept { return known && signal == 0 && code == 0; }
  /// In words: "killed by signal 11 (Segmentation fault) at: #0 ...", "exited with code 42".
  [[nodiscard]] std::string text() const;
};

class Supervisor {
 public:
  enum class State {
    empty,     ///< no process
    starting,  ///< asked the fork server for one (or waiting for the back-off to pass)
    running,   ///< a process runs
    exiting,   ///< its process has exited; waiting for the fork server's report
  };

  /// What the owner hears, on the loop the supervisor is attached to, or from poll().
  class Events {
   public:
    /// A new process runs in `slot`.
    virtual void on_started(std::uint32_t slot) = 0;
    /// The process of `slot` is gone; the slot is empty.
    virtual void on_exited(std::uint32_t slot, const ExitReport& report) = 0;
    /// A process for `slot` could not be started; the slot is empty.
    virtual void on_spawn_failed(std::uint32_t slot, const std::string& why) = 0;

   protected:
    ~Events() = default;
  };

  /// Slot i runs entry `entries[i]` of `server`. A spawn the fork server has not answered within
  /// `spawn_timeout` fails (its late answer's child is killed); an exit it has not reported within
  /// `report_timeout` is reported unknown.
  Supervisor(ForkServer& server, std::vector<std::uint32_t> entries, Events& events,
             std::chrono::milliseconds spawn_timeout, std::chrono::milliseconds report_timeout = std::chrono::milliseconds(2000));
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  /// Starts the process of an empty `slot` and waits for it (not on a loop); throws SystemError.
  void start(std::uint32_t slot, std::chrono::milliseconds timeout);
  /// Starts a process for an empty `slot` without waiting: at once, or after a back-off when the slot's
  /// last processes failed. The owner hears on_started or on_spawn_failed.
  void replace(std::uint32_t slot);
  /// The process of `slot` did useful work: its earlier failures no longer delay the next start.
  void mark_healthy(std::uint32_t slot) noexcept;

  /// Watches on `loop` from now on.
  void attach(const asio::any_io_executor& loop);
  /// Stops watching (the loop may go away); pending handlers do nothing.
  void detach() noexcept;
  /// Handles, without blocking, what happened while nothing watched: exits, answers, deadlines.
  void poll();

  /// Sends `sig` to the process of `slot`, if it runs.
  bool signal(std::uint32_t slot, int sig) noexcept;
  /// SIGTERM now, SIGKILL once `grace` has passed (checked while attached, or by poll()).
  void terminate(std::uint32_t slot, std::chrono::milliseconds grace);
  /// SIGKILL now.
  void kill(std::uint32_t slot) noexcept;

  [[nodiscard]] State state(std::uint32_t slot) const { return slots_.at(slot).state; }
  [[nodiscard]] pid_t pid(std::uint32_t slot) const { return slots_.at(slot).pid; }
  [[nodiscard]] int socket(std::uint32_t slot) const { return slots_.at(slot).socket.get(); }
  [[nodiscard]] int pidfd(std::uint32_t slot) const { return slots_.at(slot).pidfd.get(); }
  [[nodiscard]] std::size_t size() const noexcept { return slots_.size(); }
  /// Consecutive failures of `slot` (spawns that failed, processes that ended before doing useful work).
  [[nodiscard]] unsigned failures(std::uint32_t slot) const { return slots_.at(slot).failures; }

 private:
  struct Slot {
    std::uint32_t entry = 0;
    State state = State::empty;
    std::uint64_t seq = 0;  // the spawn request of its current process
    pid_t pid = 0;
    UniqueFd pidfd;
    UniqueFd socket;
    unsigned failures = 0;
    bool healthy = false;
    std::int64_t spawn_at_ns = 0;   // starting, before the request is sent
    std::int64_t answer_by_ns = 0;  // starting, after the request is sent
    std::int64_t kill_at_ns = 0;    // running after terminate()
    std::int64_t report_by_ns = 0;  // exiting
    std::optional<ExitReport> report;  // the fork server's report, if it came first
  };
  struct Watch;

  void adopt(std::uint32_t slot, ChildProcess child);
  void handle_events();
  void on_exit_seen(std::uint32_t slot);
  void finish(std::uint32_t slot, ExitReport report);
  void send_spawn(std::uint32_t slot);
  void run_deadlines();
  void watch_process(std::uint32_t slot);
  void watch_server();
  void schedule();

  ForkServer& server_;
  Events& events_;
  std::chrono::milliseconds spawn_timeout_;
  std::chrono::milliseconds report_timeout_;
  std::vector<Slot> slots_;
  std::shared_ptr<Watch> watch_;
};

}  // namespace mpaio::detail
