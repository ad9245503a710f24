#include "process/segment_binder.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "mpaio/codec.hpp"
#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/detail/syscall.hpp"
#include "process/child_setup.hpp"
#include "process/fd_passing.hpp"

namespace mpaio::detail {

namespace {

[[noreturn]] void leave(ChildExit why) { ::_exit(static_cast<int>(why)); }

}  // namespace

RunSetup make_run_setup(std::uint64_t run, const RunManifest& manifest, std::vector<RunSegment> segments) {
  std::vector<std::byte> bytes;
  Codec<RunManifest>::encode(manifest, bytes);
  RunSetup setup;
  setup.run = run;
  setup.manifest = UniqueFd(sys("memfd_create", [] { return ::memfd_create("mpaio-run", MFD_CLOEXEC); }, "name", "mpaio-run"));
  for (std::size_t done = 0; done < bytes.size();) {
    done += static_cast<std::size_t>(sys("write", [&] { return ::write(setup.manifest.get(), bytes.data() + done, bytes.size() - done); },
                                         "what", "run manifest", "bytes", bytes.size()));
  }
  setup.manifest_bytes = bytes.size();
  setup.segments = std::move(segments);
  return setup;
}

bool SegmentSender::send(int socket, const RunSetup& setup) {
  std::vector<const RunSegment*> grants;
  for (const RunSegment& s : setup.segments) {
    if (!mapped_.count(s.key) && std::none_of(grants.begin(), grants.end(), [&](const RunSegment* g) { return g->key == s.key; })) {
      grants.push_back(&s);
    }
  }
  // One message per kGrantsPerMessage segments; the first one also carries the manifest.
  std::size_t next = 0;
  do {
    RunSetupMessage msg{};
    msg.run = setup.run;
    msg.manifest_bytes = setup.manifest_bytes;
    std::vector<int> fds;
    if (next == 0) fds.push_back(setup.manifest.get());
    while (next < grants.size() && msg.grants < kGrantsPerMessage) {
      msg.grant[msg.grants++] = SegmentGrant{grants[next]->key, grants[next]->size};
      fds.push_back(grants[next]->fd);
      ++next;
    }
    msg.last = next == grants.size() ? 1 : 0;
    if (!send_message_nonblocking(socket, {reinterpret_cast<const std::byte*>(&msg), sizeof msg}, fds)) return false;
  } while (next < grants.size());
  for (const RunSegment* g : grants) mapped_.insert(g->key);
  return true;
}

void SegmentSender::forget_dead(std::vector<std::uint64_t>& gone) {
  for (auto it = mapped_.begin(); it != mapped_.end();) {
    if (segment_alive(*it)) {
      ++it;
      continue;
    }
    if (std::find(gone.begin(), gone.end(), *it) == gone.end()) gone.push_back(*it);
    it = mapped_.erase(it);
  }
}

RunManifest SegmentCache::receive(int socket, std::uint64_t run) {
  UniqueFd manifest_fd;
  std::uint64_t manifest_bytes = 0;
  for (bool first = true;; first = false) {
    RunSetupMessage msg{};
    std::vector<UniqueFd> fds;
    std::size_t n = 0;
    try {
      n = receive_message(socket, {reinterpret_cast<std::byte*>(&msg), sizeof msg}, fds);
    } catch (...) {
      leave(ChildExit::setup_failed);
    }
    if (n != sizeof msg || msg.run != run || msg.grants > kGrantsPerMessage) leave(ChildExit::protocol_error);
    if (fds.size() != msg.grants + (first ? 1 : 0)) leave(ChildExit::missing_descriptor);
    std::size_t fd_index = 0;
    if (first) {
      manifest_fd = std::move(fds[fd_index++]);
      manifest_bytes = msg.manifest_bytes;
    }
    for (std::uint32_t i = 0; i < msg.grants; ++i) {
      try {
        segments_.insert_or_assign(msg.grant[i].key, Mapping(fds[fd_index++].get(), msg.grant[i].size, false));
      } catch (...) {
        leave(ChildExit::setup_failed);
      }
    }
    if (msg.last != 0) break;
  }
  std::vector<std::byte> bytes(manifest_bytes);
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::pread(manifest_fd.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n <= 0) leave(ChildExit::setup_failed);
    done += static_cast<std::size_t>(n);
  }
  RunManifest manifest;
  try {
    manifest = Codec<RunManifest>::decode(bytes);
  } catch (...) {
    leave(ChildExit::protocol_error);
  }
  for (std::uint64_t key : manifest.forget) segments_.erase(key);
  arrays_.clear();
  for (const ArrayBinding& a : manifest.arrays) {
    auto it = segments_.find(a.segment);
    if (it == segments_.end()) leave(ChildExit::missing_descriptor);
    std::uint64_t end = 0;
    if (a.shape.size() > kMaxDims || __builtin_add_overflow(a.offset, a.nbytes, &end) || end > it->second.size()) {
      leave(ChildExit::protocol_error);
    }
    BoundArray bound;
    bound.data = it->second.data() + a.offset;
    bound.shape.assign(a.shape.begin(), a.shape.end());
    bound.size = 1;
    for (std::size_t extent : bound.shape) bound.size *= extent;
    arrays_.push_back(std::move(bound));
  }
  return manifest;
}

}  // namespace mpaio::detail
