#pragma once
// The fork server and its client. The fork server is a single-threaded process forked once, early, from the
// caller; it forks every child the caller asks for (each running one of the *entries* registered when the
// server started: a chunk worker, a pipeline stage, an interpreter's worker), reaps them, and tells the
// caller how each one ended, with the backtrace of a crash. Children therefore never inherit the caller's
// later threads or locks, yet run the caller's code at the caller's addresses.
//
// Requests and replies travel over one SOCK_SEQPACKET socket. Every spawn request carries a sequence
// number that its reply and the child's exit notice echo, so a late reply is never taken for another's.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "mpaio/detail/unique_fd.hpp"

namespace mpaio::detail {

/// What a child's entry gets.
struct ChildContext {
  std::uint32_t slot = 0;  ///< the slot the caller asked for
  int socket = -1;         ///< the child's end of a socket pair whose other end the caller gets
  pid_t fork_server = 0;
};

/// A kind of child the fork server can start.
struct ChildEntry {
  std::string name;              ///< process name prefix: "mpaio-w" names slot 3 "mpaio-w3"
  std::vector<int> keep_fds;     ///< descriptors of the caller's that the child keeps (besides its socket)
  std::function<int(std::uint32_t slot)> cpu;  ///< CPU to pin slot's child to, -1 for none; may be empty
  std::function<int(const ChildContext&)> main;  ///< runs in the child; returns its exit status
  /// A crash backtrace stops at the first frame whose function starts with this (the entry's machinery).
  std::string backtrace_stop;
};

/// A child the fork server started.
struct ChildProcess {
  std::uint32_t slot = 0;
  std::uint64_t seq = 0;  ///< its spawn request
  pid_t pid = 0;
  UniqueFd pidfd;         ///< readable once it has exited
  UniqueFd socket;        ///< the caller's end of its socket
};

/// How a child ended, as the fork server saw it when it reaped it.
struct ChildExitReport {
  std::uint32_t slot = 0;
  std::uint64_t seq = 0;
  pid_t pid = 0;
  int code = -1;          ///< exit status, -1 when killed
  int signal = 0;         ///< the signal that killed it, 0 when it exited
  std::string backtrace;  ///< where a fatal signal struck (crash_report.hpp), one "\n  #i ..." line per frame
};

/// The answer to a spawn request.
struct SpawnResult {
  std::uint32_t slot = 0;
  std::uint64_t seq = 0;
  std::optional<ChildProcess> child;  ///< empty when the fork failed
  int error = 0;                      ///< errno of the failure
};

using ForkServerEvent = std::variant<SpawnResult, ChildExitReport>;

/// The caller's side: owns the fork server process and its socket.
class ForkServer {
 public:
  /// Forks the fork server (through fork_with_hooks), which will start children running `entries[i]`.
  /// `keep_fds` are descriptors the fork server keeps for the entries; `shutdown_grace` is how long children
  /// get to leave at shutdown before they are killed. Throws SystemError.
  ForkServer(std::vector<ChildEntry> entries, std::chrono::milliseconds shutdown_grace);
  ~ForkServer();
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  /// Asks for a child running entry `entry` in `slot`; the answer is a SpawnResult from read_events().
  /// Returns the request's sequence number. Never blocks.
  std::uint64_t request_spawn(std::uint32_t entry, std::uint32_t slot);
  /// Starts a child and waits for it (not for a loop thread): other events that arrive meanwhile are kept
  /// for read_events(). Throws SystemError when the fork fails, the server is gone, or `timeout` passes
  /// (the request is then cancelled: a late answer's child is killed).
  ChildProcess spawn(std::uint32_t entry, std::uint32_t slot, std::chrono::milliseconds timeout);
  /// Forgets request `seq`: when its answer comes, its child is killed and its events are dropped.
  void cancel(std::uint64_t seq);
  /// Every event that has arrived, without blocking. Marks the server gone when its socket is closed.
  std::vector<ForkServerEvent> read_events();

  /// The socket to watch for readability (events to read).
  [[nodiscard]] int socket() const noexcept { return socket_.get(); }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// False once the server is known to be gone (its socket closed or broken).
  [[nodiscard]] bool alive() const noexcept { return alive_; }
  /// Asks the server to leave (children get the grace, then SIGKILL) and reaps it. Idempotent.
  void shutdown() noexcept;

 private:
  /// Receives one event if one is there (waiting up to `timeout_ms`, -1: for ever); false when none came.
  bool receive(int timeout_ms);

  pid_t pid_ = -1;
  UniqueFd socket_;
  bool alive_ = false;
  std::uint64_t next_seq_ = 1;
  std::vector<std::uint64_t> cancelled_;  // requests whose answer kills its child
  std::deque<ForkServerEvent> events_;    // received, not handed out yet
};

}  // namespace mpaio::detail
