#pragma once
// Sending and receiving a message with file descriptors (SCM_RIGHTS) over a SOCK_SEQPACKET socket.

#include <cstddef>
#include <span>
#include <vector>

#include "mpaio/detail/unique_fd.hpp"

namespace mpaio::detail {

/// Sends `data` and a copy of each of `fds` in one message. Throws SystemError.
void send_message(int socket, std::span<const std::byte> data, std::span<const int> fds = {});

/// Sends like send_message() without blocking; false when the socket's buffer is full (nothing sent).
bool send_message_nonblocking(int socket, std::span<const std::byte> data, std::span<const int> fds = {});

/// Receives one message into `data` (returns its size; 0 at end of stream) and the descriptors it
/// carried into `fds`. Waits at most `timeout_ms` (-1: no limit); throws SystemError on timeout or error.
std::size_t receive_message(int socket, std::span<std::byte> data, std::vector<UniqueFd>& fds, int timeout_ms = -1);

}  // namespace mpaio::detail
