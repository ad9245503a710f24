#pragma once
// What the caller and a chunk worker say to each other: the records of the task ring (caller -> worker), the
// records of the result ring (worker -> caller), and the run set-up that travels over the worker's socket.
// Each record type has fields of one meaning; the rings themselves are task_ring.hpp and record_ring.hpp.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

namespace mpaio::detail {

// ---- task ring -------------------------------------------------------------------------------------------------

enum class TaskKind : std::uint32_t {
  chunk = 1,      ///< run one chunk
  run_setup = 2,  ///< read the next run's set-up from the socket first
  stop = 3,       ///< finish what is published and leave
};

/// Runs one chunk of array `array` with parameters `params` through the worker type `worker_type`.
struct ChunkOrder {
  std::uint64_t chunk_id;     ///< echoed in the result
  std::uint64_t worker_type;  ///< the worker type's registered id (worker_registry.hpp), never an address
  std::uint64_t start;        ///< the range
  std::uint64_t end;
  std::uint32_t array;        ///< index into the run's arrays
  std::uint32_t params;       ///< index into the run's parameters, or kNoParams
};
inline constexpr std::uint32_t kNoParams = 0xffffffffu;

/// Announces a RunSetupMessage on the socket for run `run`.
struct RunSetupOrder {
  std::uint64_t run;
};

/// One task record (64 bytes); `kind` says which member is meant.
struct TaskRecord {
  TaskKind kind;
  std::uint32_t reserved;
  union {
    ChunkOrder chunk;
    RunSetupOrder setup;
  };
  std::uint8_t padding[16];
};
static_assert(sizeof(TaskRecord) == 64);

inline TaskRecord chunk_record(const ChunkOrder& order) {
  TaskRecord r{};
  r.kind = TaskKind::chunk;
  r.chunk = order;
  return r;
}
inline TaskRecord setup_record(std::uint64_t run) {
  TaskRecord r{};
  r.kind = TaskKind::run_setup;
  r.setup = RunSetupOrder{run};
  return r;
}
inline TaskRecord stop_record() {
  TaskRecord r{};
  r.kind = TaskKind::stop;
  return r;
}

inline constexpr std::size_t kTaskSlots = 64;

// ---- result ring -----------------------------------------------------------------------------------------------

enum class ResultKind : std::uint32_t {
  done = 1,    ///< ChunkDone + the encoded result
  failed = 2,  ///< ChunkFailed + type, message and failure payload
  log = 3,     ///< LogLine + the text
};

/// A chunk's result; the encoded result follows.
struct ChunkDone {
  std::uint64_t chunk_id;
  std::int64_t start_ns;
  std::int64_t end_ns;
};

/// A chunk's failure; its exception type, message and encoded exception (failure payload) follow.
struct ChunkFailed {
  std::uint64_t chunk_id;
  std::int64_t start_ns;
  std::int64_t end_ns;
  std::uint32_t type_bytes;
  std::uint32_t message_bytes;
  std::uint32_t payload_bytes;
  std::uint32_t reserved;
};

/// A line the worker logged (spdlog level); its text follows.
struct LogLine {
  std::uint32_t level;
  std::uint32_t reserved;
};

/// The longest exception type, message or log line a worker sends (longer ones are cut).
inline constexpr std::size_t kMaxErrorText = 2048;

// ---- run set-up (socket) ---------------------------------------------------------------------------------------

inline constexpr std::size_t kMaxDims = 32;

/// One array of a run, as the worker binds it.
struct ArrayBinding {
  std::uint64_t segment = 0;  ///< the caller's key of the segment
  std::uint64_t offset = 0;   ///< of element 0 in the segment
  std::uint64_t nbytes = 0;
  std::vector<std::uint64_t> shape;
  template <class Archive>
  void serialize(Archive& ar) { ar(segment, offset, nbytes, shape); }
};

/// What a worker needs to know of a run before its first chunk; travels in a memfd (it may be large: the
/// parameters are the user's), encoded with the result codec's bounded archive.
struct RunManifest {
  std::uint32_t log_level = 0;            ///< spdlog level of the caller
  std::vector<std::uint64_t> forget;      ///< segments the caller no longer holds: unmap them
  std::vector<ArrayBinding> arrays;
  std::vector<std::string> params;        ///< encoded parameters (bytes), by index
  template <class Archive>
  void serialize(Archive& ar) { ar(log_level, forget, arrays, params); }
};

/// A segment whose descriptor travels with a RunSetupMessage.
struct SegmentGrant {
  std::uint64_t key;
  std::uint64_t size;
};

inline constexpr std::size_t kGrantsPerMessage = 200;  // below SCM_MAX_FD (253), with the manifest's fd

/// Caller -> worker over its socket, announced by a run_setup record. The first message of a run carries the
/// manifest's memfd as its first descriptor; the segment descriptors follow, in `grants` order, over as many
/// messages as needed (`last` marks the final one).
struct RunSetupMessage {
  std::uint64_t run;
  std::uint64_t manifest_bytes;  ///< first message: size of the manifest
  std::uint32_t grants;          ///< segment descriptors in this message
  std::uint32_t last;            ///< 1 in the run's final message
  SegmentGrant grant[kGrantsPerMessage];
};

}  // namespace mpaio::detail
