// The fork server's loop (in its own process) and its client (in the caller).

#include "process/fork_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <span>

#include <fmt/format.h>

#include "mpaio/detail/chunk_call.hpp"
#include "mpaio/detail/syscall.hpp"
#include "mpaio/error.hpp"
#include "process/child_setup.hpp"
#include "process/crash_report.hpp"
#include "process/fd_passing.hpp"
#include "process/forking.hpp"
#include "process/process_signal.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace mpaio::detail {

namespace {

// ---- the protocol -----------------------------------------------------------------------------------------------

enum class RequestKind : std::uint32_t { spawn = 1, shutdown = 2 };

/// Caller -> server.
struct Request {
  RequestKind kind;
  std::uint32_t entry;  ///< spawn: which entry the child runs
  std::uint32_t slot;   ///< spawn: the slot, handed to the child
  std::uint32_t reserved;
  std::uint64_t seq;    ///< spawn: echoed in the reply and the exit notice
};

enum class EventKind : std::uint32_t { spawned = 1, spawn_failed = 2, exited = 3 };

/// Server -> caller after a spawn request; a `spawned` one carries the child's pidfd and socket.
struct SpawnReply {
  EventKind kind;
  std::uint32_t slot;
  std::uint64_t seq;
  std::int32_t pid;    ///< spawned: the child
  std::int32_t error;  ///< spawn_failed: errno
};

/// Server -> caller when a child has been reaped; `backtrace_bytes` of text follow.
struct ExitNotice {
  EventKind kind;
  std::uint32_t slot;
  std::uint64_t seq;
  std::int32_t pid;
  std::int32_t code;     ///< exit status, -1 when killed
  std::int32_t signal;   ///< the killing signal, 0 when it exited
  std::uint32_t backtrace_bytes;
};

inline constexpr std::size_t kMaxBacktrace = 16 * 1024;
inline constexpr std::size_t kMaxEvent = sizeof(ExitNotice) + kMaxBacktrace;

template <class T>
std::span<const std::byte> bytes_of(const T& value) {
  return {reinterpret_cast<const std::byte*>(&value), sizeof value};
}

// ---- the server -------------------------------------------------------------------------------------------------

class Server {
 public:
  Server(const std::vector<ChildEntry>& entries, int socket, std::chrono::milliseconds grace)
      : entries_(entries), socket_(socket), grace_(grace) {}

  [[noreturn]] void run() {
    for (;;) {
      std::vector<pollfd> fds;
      fds.push_back({socket_, static_cast<short>(POLLIN | (outbox_.empty() ? 0 : POLLOUT)), 0});
      for (const Child& c : children_) fds.push_back({c.pidfd.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        leave(std::chrono::milliseconds(0));
      }
      // Reap before serving requests, so that an exit notice precedes the reply to a request to replace it.
      for (std::size_t i = fds.size(); i-- > 1;) {
        if (fds[i].revents != 0) reap(i - 1);
      }
      if ((fds[0].revents & POLLOUT) != 0 || !outbox_.empty()) flush();
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) serve();
    }
  }

  /// Waits up to `grace` for the children to leave, kills the rest, reaps them all and exits.
  [[noreturn]] void leave(std::chrono::milliseconds grace) {
    const std::int64_t deadline = monotonic_ns() + std::chrono::nanoseconds(grace).count();
    while (!children_.empty()) {
      const std::int64_t left_ms = (deadline - monotonic_ns()) / 1'000'000;
      if (left_ms <= 0) break;
      std::vector<pollfd> fds;
      for (const Child& c : children_) fds.push_back({c.pidfd.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), static_cast<int>(left_ms)) <= 0) continue;
      for (std::size_t i = fds.size(); i-- > 0;) {
        if (fds[i].revents != 0) reap(i, false);
      }
    }
    for (const Child& c : children_) signal_process(c.pidfd.get(), SIGKILL);
    while (!children_.empty()) reap(children_.size() - 1, false);
    ::_exit(0);
  }

 private:
  struct Child {
    std::uint32_t slot;
    std::uint64_t seq;
    pid_t pid;
    UniqueFd pidfd;
    UniqueFd crash;  // read end of the pipe its crash reporter writes to
    std::uint32_t entry;
  };
  struct Outgoing {
    std::vector<std::byte> bytes;
    std::vector<UniqueFd> fds;
  };

  void serve() {
    Request request{};
    std::vector<UniqueFd> unused;
    std::size_t n = 0;
    try {
      n = receive_message(socket_, {reinterpret_cast<std::byte*>(&request), sizeof request}, unused);
    } catch (...) {
      n = 0;
    }
    if (n != sizeof request) leave(std::chrono::milliseconds(0));  // the caller is gone: take the children along
    if (request.kind == RequestKind::shutdown) leave(grace_);
    if (request.kind == RequestKind::spawn) spawn(request);
  }

  void spawn(const Request& request) {
    SpawnReply reply{EventKind::spawn_failed, request.slot, request.seq, 0, 0};
    int pair[2];
    int crash_pipe[2];
    if (request.entry >= entries_.size()) {
      reply.error = EINVAL;
      post(bytes_of(reply), {});
      return;
    }
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      reply.error = errno;
      post(bytes_of(reply), {});
      return;
    }
    UniqueFd ours(pair[0]);
    UniqueFd theirs(pair[1]);
    if (::pipe2(crash_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      reply.error = errno;
      post(bytes_of(reply), {});
      return;
    }
    UniqueFd crash_read(crash_pipe[0]);
    UniqueFd crash_write(crash_pipe[1]);
    const ChildEntry& entry = entries_[request.entry];
    const pid_t self = ::getpid();
    pid_t pid = -1;
    try {
      pid = fork_with_hooks("child");
    } catch (const SystemError& e) {
      reply.error = e.code().value();
      post(bytes_of(reply), {});
      return;
    }
    if (pid == 0) run_child(entry, request.slot, theirs.get(), crash_write.get(), self);
    theirs.reset();
    crash_write.reset();
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) {  // cannot watch it: do not keep it
      reply.error = errno;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      post(bytes_of(reply), {});
      return;
    }
    reply.kind = EventKind::spawned;
    reply.pid = pid;
    std::vector<UniqueFd> fds;
    fds.push_back(dup_fd(pidfd.get()));
    fds.push_back(std::move(ours));
    post(bytes_of(reply), std::move(fds));
    children_.push_back({request.slot, request.seq, pid, std::move(pidfd), std::move(crash_read), request.entry});
  }

  [[noreturn]] static void run_child(const ChildEntry& entry, std::uint32_t slot, int socket, int crash_fd,
                                     pid_t fork_server) noexcept {
    std::vector<int> keep = entry.keep_fds;
    keep.push_back(socket);
    set_up_child(ChildSetup{fmt::format("{}{}", entry.name, slot), keep, fork_server,
                            entry.cpu ? entry.cpu(slot) : -1, crash_fd});
    int status = static_cast<int>(ChildExit::entry_failed);
    try {
      status = entry.main(ChildContext{slot, socket, fork_server});
    } catch (...) {
    }
    ::_exit(status);
  }

  /// Reaps child i and, unless leaving, tells the caller how it ended.
  void reap(std::size_t i, bool notify = true) {
    siginfo_t info{};
    if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(children_[i].pidfd.get()), &info, WEXITED) != 0) return;
    // Off the list before anything else: posting may find the caller gone and leave, reaping the rest.
    const Child child = std::move(children_[i]);
    children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!notify) return;
    const bool killed = info.si_code != CLD_EXITED;
    std::string backtrace;
    if (killed) {
      const CrashFrames frames = read_crash_frames(child.crash.get());
      if (frames.count != 0 && frames.signal == info.si_status) {
        try {
          backtrace = describe_frames(frames, entries_[child.entry].backtrace_stop).substr(0, kMaxBacktrace);
        } catch (...) {
          backtrace.clear();
        }
      }
    }
    const ExitNotice notice{EventKind::exited,
                            child.slot,
                            child.seq,
                            child.pid,
                            killed ? -1 : info.si_status,
                            killed ? info.si_status : 0,
                            static_cast<std::uint32_t>(backtrace.size())};
    std::vector<std::byte> bytes(sizeof notice + backtrace.size());
    std::memcpy(bytes.data(), &notice, sizeof notice);
    std::memcpy(bytes.data() + sizeof notice, backtrace.data(), backtrace.size());
    post(bytes, {});
  }

  /// Queues a message for the caller and sends what the socket takes now: the server never blocks on a
  /// caller that is busy elsewhere (it still reaps, and still sees the caller leave).
  void post(std::span<const std::byte> bytes, std::vector<UniqueFd> fds) {
    outbox_.push_back({std::vector<std::byte>(bytes.begin(), bytes.end()), std::move(fds)});
    flush();
  }

  void flush() {
    while (!outbox_.empty()) {
      const Outgoing& out = outbox_.front();
      std::vector<int> raw;
      for (const UniqueFd& fd : out.fds) raw.push_back(fd.get());
      try {
        if (!send_message_nonblocking(socket_, out.bytes, raw)) return;  // full: POLLOUT tells when to go on
      } catch (...) {
        leave(std::chrono::milliseconds(0));  // the caller is gone
      }
      outbox_.pop_front();
    }
  }

  const std::vector<ChildEntry>& entries_;
  int socket_;
  std::chrono::milliseconds grace_;
  std::vector<Child> children_;
  std::deque<Outgoing> outbox_;
};

std::vector<int> server_keep_fds(const std::vector<ChildEntry>& entries, int socket) {
  std::vector<int> keep{socket};
  for (const ChildEntry& e : entries) keep.insert(keep.end(), e.keep_fds.begin(), e.keep_fds.end());
  return keep;
}

}  // namespace

// ---- the client -------------------------------------------------------------------------------------------------

ForkServer::ForkServer(std::vector<ChildEntry> entries, std::chrono::milliseconds shutdown_grace) {
  int pair[2];
  sys("socketpair", [&] { return ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair); });
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  static const bool unwinder_loaded = (load_unwinder(), true);  // once per program: every server inherits it
  (void)unwinder_loaded;
  const pid_t pid = fork_with_hooks("fork server");
  if (pid == 0) {
    set_up_child(ChildSetup{"mpaio-forksrv", server_keep_fds(entries, theirs.get()), 0, -1, -1});
    try {
      Server(entries, theirs.get(), shutdown_grace).run();
    } catch (...) {
    }
    ::_exit(static_cast<int>(ChildExit::fork_server_failed));
  }
  pid_ = pid;
  socket_ = std::move(ours);
  alive_ = true;
}

ForkServer::~ForkServer() { shutdown(); }

std::uint64_t ForkServer::request_spawn(std::uint32_t entry, std::uint32_t slot) {
  const std::uint64_t seq = next_seq_++;
  if (!alive_) {
    events_.push_back(SpawnResult{slot, seq, std::nullopt, EPIPE});
    return seq;
  }
  const Request request{RequestKind::spawn, entry, slot, 0, seq};
  try {
    send_message(socket_.get(), bytes_of(request));
  } catch (const SystemError& e) {
    alive_ = false;
    events_.push_back(SpawnResult{slot, seq, std::nullopt, e.code().value()});
  }
  return seq;
}

ChildProcess ForkServer::spawn(std::uint32_t entry, std::uint32_t slot, std::chrono::milliseconds timeout) {
  const std::uint64_t seq = request_spawn(entry, slot);
  const std::int64_t deadline = monotonic_ns() + std::chrono::nanoseconds(timeout).count();
  for (;;) {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      auto* result = std::get_if<SpawnResult>(&*it);
      if (result == nullptr || result->seq != seq) continue;
      SpawnResult found = std::move(*result);
      events_.erase(it);
      if (!found.child) {
        throw SystemError(describe_call("fork", "role", "child", "slot", slot), found.error,
                          alive_ ? "" : "the fork server is gone");
      }
      return std::move(*found.child);
    }
    const std::int64_t left_ms = (deadline - monotonic_ns()) / 1'000'000;
    if (!alive_ || left_ms <= 0 || !receive(static_cast<int>(left_ms))) {
      if (!alive_) continue;  // the failure is queued as this request's result
      cancel(seq);
      throw SystemError(describe_call("spawn", "slot", slot, "fork_server_pid", pid_), ETIMEDOUT,
                        fmt::format("the fork server did not answer within {} ms", timeout.count()));
    }
  }
}

void ForkServer::cancel(std::uint64_t seq) { cancelled_.push_back(seq); }

std::vector<ForkServerEvent> ForkServer::read_events() {
  while (alive_ && receive(0)) {
  }
  std::vector<ForkServerEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

bool ForkServer::receive(int timeout_ms) {
  std::vector<std::byte> buffer(kMaxEvent);
  std::vector<UniqueFd> fds;
  std::size_t n = 0;
  try {
    pollfd p{socket_.get(), POLLIN, 0};
    if (sys("poll", [&] { return ::poll(&p, 1, timeout_ms); }, "fork_server_socket", socket_.get()) == 0) return false;
    n = receive_message(socket_.get(), buffer, fds);
  } catch (const SystemError&) {
    n = 0;
  }
  if (n == 0) {  // end of stream or a broken socket: the server is gone
    alive_ = false;
    return false;
  }
  EventKind kind{};
  if (n < sizeof kind) return true;
  std::memcpy(&kind, buffer.data(), sizeof kind);
  auto is_cancelled = [&](std::uint64_t seq) {
    return std::find(cancelled_.begin(), cancelled_.end(), seq) != cancelled_.end();
  };
  if ((kind == EventKind::spawned || kind == EventKind::spawn_failed) && n == sizeof(SpawnReply)) {
    SpawnReply reply{};
    std::memcpy(&reply, buffer.data(), sizeof reply);
    const bool spawned = kind == EventKind::spawned && fds.size() == 2;
    if (is_cancelled(reply.seq)) {
      if (spawned) signal_process(fds[0].get(), SIGKILL);  // nobody waits for it any more
      if (!spawned) std::erase(cancelled_, reply.seq);
      return true;
    }
    SpawnResult result{reply.slot, reply.seq, std::nullopt, spawned ? 0 : (reply.error != 0 ? reply.error : EPROTO)};
    if (spawned) result.child = ChildProcess{reply.slot, reply.seq, reply.pid, std::move(fds[0]), std::move(fds[1])};
    events_.push_back(std::move(result));
  } else if (kind == EventKind::exited && n >= sizeof(ExitNotice)) {
    ExitNotice notice{};
    std::memcpy(&notice, buffer.data(), sizeof notice);
    if (is_cancelled(notice.seq)) {
      std::erase(cancelled_, notice.seq);
      return true;
    }
    const std::size_t text = std::min<std::size_t>(notice.backtrace_bytes, n - sizeof notice);
    events_.push_back(ChildExitReport{notice.slot, notice.seq, notice.pid, notice.code, notice.signal,
                                      std::string(reinterpret_cast<const char*>(buffer.data()) + sizeof notice, text)});
  }
  return true;
}

void ForkServer::shutdown() noexcept {
  if (pid_ <= 0) return;
  const Request request{RequestKind::shutdown, 0, 0, 0, 0};
  try {
    if (alive_) send_message(socket_.get(), bytes_of(request));
  } catch (...) {
  }
  socket_.reset();  // if the request did not go, the server sees end of stream and kills its children at once
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  alive_ = false;
}

}  // namespace mpaio::detail
