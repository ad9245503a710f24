#pragma once
// Both sides of handing a run's arrays to a worker process. The caller sends, once per run, a manifest (the
// arrays, the parameters, the log level, the segments to forget) in a memfd, with the descriptor of every
// segment the worker has not mapped yet (SCM_RIGHTS); the worker maps each segment once and keeps the
// mapping across chunks and runs until the caller says the segment is gone.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mpaio/detail/mapping.hpp"
#include "mpaio/detail/unique_fd.hpp"
#include "process/chunk_protocol.hpp"

namespace mpaio::detail {

/// A segment a run uses, in the caller.
struct RunSegment {
  std::uint64_t key = 0;  ///< the caller's segment registry key
  int fd = -1;            ///< valid for the run
  std::size_t size = 0;
};

/// A run's set-up, made once per run and sent to every worker process.
struct RunSetup {
  std::uint64_t run = 0;
  UniqueFd manifest;  ///< memfd holding the encoded RunManifest
  std::size_t manifest_bytes = 0;
  std::vector<RunSegment> segments;
};

/// Encodes `manifest` into a memfd; throws SystemError.
RunSetup make_run_setup(std::uint64_t run, const RunManifest& manifest, std::vector<RunSegment> segments);

/// The caller's side, one per worker process: which segments that process has mapped.
class SegmentSender {
 public:
  /// Sends `setup` over `socket` with the descriptors the process lacks, without blocking. Returns false
  /// when the socket is full (the process does not read it: it is stuck, and must be replaced). Throws
  /// SystemError when the socket is broken.
  bool send(int socket, const RunSetup& setup);
  /// Forgets the segments this process has mapped that the caller no longer holds; adds them to `gone`.
  void forget_dead(std::vector<std::uint64_t>& gone);
  /// A new process: nothing mapped.
  void reset() noexcept { mapped_.clear(); }

 private:
  std::unordered_set<std::uint64_t> mapped_;
};

/// An array of the run, bound in the worker process.
struct BoundArray {
  const std::byte* data = nullptr;
  std::vector<std::size_t> shape;
  std::size_t size = 0;  ///< elements
};

/// The worker's side: its mappings, and the current run's arrays and parameters.
class SegmentCache {
 public:
  /// Reads run `run`'s set-up from `socket` (announced by a run_setup record), maps the new segments,
  /// unmaps the forgotten ones and binds the arrays. Leaves the process (ChildExit) when the caller broke
  /// the protocol: there is nobody to tell.
  RunManifest receive(int socket, std::uint64_t run);

  [[nodiscard]] const std::vector<BoundArray>& arrays() const noexcept { return arrays_; }

 private:
  std::unordered_map<std::uint64_t, Mapping> segments_;
  std::vector<BoundArray> arrays_;
};

}  // namespace mpaio::detail
