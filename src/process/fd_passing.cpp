#include "process/fd_passing.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cstring>

#include <fmt/format.h>

#include "mpaio/detail/syscall.hpp"

namespace mpaio::detail {

namespace {
constexpr std::size_t kMaxFds = 253;  // SCM_MAX_FD
}

namespace {

/// sendmsg() of `data` with copies of `fds`; returns -1 with errno set on failure.
ssize_t send_with_fds(int socket, std::span<const std::byte> data, std::span<const int> fds, int flags) {
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  return ::sendmsg(socket, &msg, MSG_NOSIGNAL | flags);
}

void check_fd_count(std::span<const int> fds) {
  if (fds.size() > kMaxFds) {
    throw SystemError(describe_call("sendmsg", "fds", fds.size()), EINVAL, fmt::format("at most {} descriptors per message", kMaxFds));
  }
}

}  // namespace

void send_message(int socket, std::span<const std::byte> data, std::span<const int> fds) {
  check_fd_count(fds);
  sys("sendmsg", [&] { return send_with_fds(socket, data, fds, 0); }, "socket", socket, "bytes", data.size(),
      "fds", fds.size());
}

bool send_message_nonblocking(int socket, std::span<const std::byte> data, std::span<const int> fds) {
  check_fd_count(fds);
  for (;;) {
    if (send_with_fds(socket, data, fds, MSG_DONTWAIT) >= 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return false;
    throw SystemError(describe_call("sendmsg", "socket", socket, "bytes", data.size(), "fds", fds.size()), errno);
  }
}

std::size_t receive_message(int socket, std::span<std::byte> data, std::vector<UniqueFd>& fds, int timeout_ms) {
  if (timeout_ms >= 0) {
    pollfd p{socket, POLLIN, 0};
    const int ready = sys("poll", [&] { return ::poll(&p, 1, timeout_ms); }, "socket", socket);
    if (ready == 0) throw SystemError(describe_call("recvmsg", "socket", socket, "timeout_ms", timeout_ms), ETIMEDOUT);
  }
  iovec iov{data.data(), data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = sys("recvmsg", [&] { return ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); }, "socket", socket);
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    throw SystemError(describe_call("recvmsg", "socket", socket), EMSGSIZE, "message or descriptors truncated");
  }
  return static_cast<std::size_t>(n);
}

}  // namespace mpaio::detail
