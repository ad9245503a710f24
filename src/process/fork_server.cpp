// The fork server: a single-threaded process forked when the pool is created. It forks every worker
// (so workers never inherit the caller's later threads or locks), reaps them, and writes each worker's
// exit status into its channel before waking the caller. It leaves when the caller asks or disappears.

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <vector>

#include "mpaio/detail/chunk_call.hpp"
#include "process/fd_passing.hpp"
#include "process/protocol.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace mpaio::detail {

void close_fds_except(std::initializer_list<int> keep) noexcept {
  std::vector<int> sorted(keep);
  std::sort(sorted.begin(), sorted.end());
  unsigned next = 0;
  for (int fd : sorted) {
    if (fd < 0) continue;
    if (static_cast<unsigned>(fd) > next) ::syscall(SYS_close_range, next, static_cast<unsigned>(fd) - 1, 0);
    next = static_cast<unsigned>(fd) + 1;
  }
  ::syscall(SYS_close_range, next, ~0U, 0);
}

void reset_signals_for_child() noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // fails harmlessly for KILL/STOP
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ign, nullptr);  // Ctrl-C is the caller's to handle
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

namespace {

struct Child {
  std::size_t slot;
  pid_t pid;
  UniqueFd pidfd;
};

class ForkServer {
 public:
  ForkServer(const PoolLayout& layout, int socket) : layout_(layout), socket_(socket) {}

  [[noreturn]] void run() {
    for (;;) {
      std::vector<pollfd> fds;
      fds.push_back({socket_, POLLIN, 0});
      for (const Child& c : children_) fds.push_back({c.pidfd.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        shutdown(std::chrono::milliseconds(0));
      }
      // Reap before serving requests, so an exit report precedes a request to replace the worker.
      for (std::size_t i = fds.size(); i-- > 1;) {
        if (fds[i].revents != 0) reap(i - 1);
      }
      if (fds[0].revents != 0) serve();
    }
  }

 private:
  void serve() {
    ForkRequest request{};
    std::vector<UniqueFd> unused;
    std::size_t n = 0;
    try {
      n = receive_message(socket_, {reinterpret_cast<std::byte*>(&request), sizeof request}, unused);
    } catch (...) {
      n = 0;
    }
    if (n != sizeof request) shutdown(std::chrono::milliseconds(0));  // the caller is gone: take the workers along
    if (request.op == ForkRequest::Op::shutdown) shutdown(layout_.shutdown_grace);
    spawn(request.slot);
  }

  void spawn(std::size_t slot) {
    int pair[2];
    ForkReply reply{0, 0};
    if (slot >= layout_.slots || ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      reply.error = slot >= layout_.slots ? EINVAL : errno;
      send_reply(reply, {});
      return;
    }
    UniqueFd ours(pair[0]);
    UniqueFd theirs(pair[1]);
    const pid_t self = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      close_fds_except({0, 1, 2, layout_.eventfd, theirs.get()});
      worker_main(layout_, slot, theirs.get(), self);
    }
    if (pid < 0) {
      reply.error = errno;
      send_reply(reply, {});
      return;
    }
    theirs.reset();
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) {  // cannot watch it: do not keep it
      reply.error = errno;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      send_reply(reply, {});
      return;
    }
    reply.pid = pid;
    const int sent[] = {pidfd.get(), ours.get()};
    send_reply(reply, sent);
    children_.push_back({slot, pid, std::move(pidfd)});
  }

  void send_reply(const ForkReply& reply, std::span<const int> fds) {
    try {
      send_message(socket_, {reinterpret_cast<const std::byte*>(&reply), sizeof reply}, fds);
    } catch (...) {
      shutdown(std::chrono::milliseconds(0));
    }
  }

  /// Reaps child i, reports its status in its channel and wakes the caller.
  void reap(std::size_t i) {
    Child& child = children_[i];
    siginfo_t info{};
    if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(child.pidfd.get()), &info, WEXITED) != 0) return;
    auto& h = layout_.channel(child.slot).header();
    h.exit_code = info.si_code == CLD_EXITED ? info.si_status : -1;
    h.exit_signal = info.si_code == CLD_EXITED ? 0 : info.si_status;
    h.exit_pid.store(child.pid, std::memory_order_seq_cst);
    ::eventfd_write(layout_.eventfd, 1);
    children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  /// Waits up to `grace` for the workers to leave, kills the rest, reaps them all and exits.
  [[noreturn]] void shutdown(std::chrono::milliseconds grace) {
    const std::int64_t deadline = monotonic_ns() + std::chrono::nanoseconds(grace).count();
    while (!children_.empty()) {
      const std::int64_t left_ms = (deadline - monotonic_ns()) / 1'000'000;
      if (left_ms <= 0) break;
      std::vector<pollfd> fds;
      for (const Child& c : children_) fds.push_back({c.pidfd.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), static_cast<int>(left_ms)) <= 0) continue;
      for (std::size_t i = fds.size(); i-- > 0;) {
        if (fds[i].revents != 0) reap(i);
      }
    }
    for (const Child& c : children_) ::syscall(SYS_pidfd_send_signal, c.pidfd.get(), SIGKILL, nullptr, 0);
    while (!children_.empty()) reap(children_.size() - 1);
    ::_exit(0);
  }

  const PoolLayout& layout_;
  int socket_;
  std::vector<Child> children_;
};

}  // namespace

void fork_server_main(const PoolLayout& layout, int socket) {
  ::prctl(PR_SET_NAME, "mpaio-forksrv");
  reset_signals_for_child();
  close_fds_except({0, 1, 2, layout.eventfd, socket});
  try {
    ForkServer(layout, socket).run();
  } catch (...) {
    ::_exit(73);
  }
}

}  // namespace mpaio::detail
