#pragma once
/// @file process_pool_executor.hpp
/// ProcessPoolExecutor: runs chunks in a pool of persistent worker processes.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "mpaio/executor.hpp"

namespace mpaio {

/// Options of a ProcessPoolExecutor.
struct ProcessPoolOptions {
  /// Number of worker processes (at least 1); by default one per core.
  std::size_t workers = default_worker_count();
  /// Most chunks queued per worker beyond the one it runs (1..32). While chunks are long the pool queues
  /// fewer, about a millisecond of work per worker, so that long chunks stay balanced across workers; short
  /// ones fill the queue, so that a worker never waits for a round trip to the caller.
  std::size_t queue_depth = 32;
  /// Largest encoded result of one chunk, in bytes; a bigger one fails its chunk (not the run).
  std::size_t max_result_bytes = 1 << 20;
  /// How long a worker waits for work, spinning, before it sleeps on a futex.
  std::chrono::microseconds worker_spin{50};
  /// How long a finished result of a short chunk may wait before its worker wakes the caller's loop, so
  /// that thousands of tiny chunks cost one wake-up per batch rather than one per chunk. A chunk that ran
  /// longer than this, and a worker's last queued chunk, wake the caller at once. 0: every result does.
  std::chrono::microseconds max_result_delay{500};
  /// How long the caller's loop, with chunks in flight and no result ready, spins for the next result
  /// before it sleeps on the eventfd. Worth it only with a core to spare beside the workers: on a machine
  /// whose cores the workers fill, the spin takes a core from them.
  std::chrono::microseconds caller_spin{0};
  /// At shutdown, how long workers get to exit before they are killed.
  std::chrono::milliseconds shutdown_grace{2000};
  /// Replace a worker process after it has run this many chunks (for code that leaks); 0: never.
  std::size_t max_chunks_per_worker = 0;
  /// Pin worker i to one CPU: cpus[i % cpus.size()], or CPU i % (number of CPUs) when `cpus` is empty.
  bool pin_workers = false;
  /// The CPUs for pin_workers.
  std::vector<int> cpus{};
  /// How long the fork server may take to start a worker; a start it has not answered by then fails (a
  /// worker it starts later is killed).
  std::chrono::milliseconds spawn_timeout{10'000};
};

/// Bytes that crossed a pool's channels since it started: the cost of talking to workers.
struct ChannelTraffic {
  std::uint64_t chunks = 0;         ///< chunk results received
  std::uint64_t task_bytes = 0;     ///< task records and array bindings sent to workers
  std::uint64_t result_bytes = 0;   ///< result records received, headers and padding included
  std::uint64_t payload_bytes = 0;  ///< of which the encoded results themselves
};

/// Runs chunks in `workers` persistent processes forked from a single-threaded fork server.
///
/// Construct it early, before the program starts other threads (like Python's forkserver): the fork
/// server is forked from the constructing thread, and every worker, including each replacement, is
/// forked from the fork server, so workers share the program's code (Worker::process is reached through
/// a plain function pointer) but none of the state of threads started later. Construct it from a thread
/// that lives as long as the pool.
///
/// What `process` and `init` see in a worker:
/// - the program as it was when the pool was constructed. A global or static written afterwards keeps its
///   old value in the workers, silently (a ThreadPoolExecutor's threads, sharing the program's memory, see
///   the new one): set such state before constructing the pool, or construct a new pool after changing it.
/// - the arrays handed to the run, as they are when a chunk reads them: the way to give workers data that
///   changes after the pool was constructed.
///
/// Code in `process` and `init` may log through spdlog: each line reaches the caller's default logger,
/// tagged "[mpaio-w<slot> pid <pid>]", in order per worker, filtered by the caller's level.
///
/// Tasks and results travel through per-worker rings in shared memory; a worker sleeps on a futex when
/// idle, and wakes the caller through an eventfd that the run's Asio loop watches, so no thread blocks
/// waiting; results of short chunks wake it once per batch (see max_result_delay). A worker's death is seen at once through its pidfd. Each worker maps an array's segment once
/// and keeps the mapping for later chunks and runs. Workers ignore SIGINT (the caller decides what Ctrl-C
/// means) and die with the caller. Destruction stops and reaps every process.
class ProcessPoolExecutor final : public Executor {
 public:
  /// Forks the fork server and the workers. Throws InvalidArgument for bad options, SystemError when a
  /// process cannot be started.
  explicit ProcessPoolExecutor(ProcessPoolOptions options = {});
  ~ProcessPoolExecutor() override;
  ProcessPoolExecutor(const ProcessPoolExecutor&) = delete;
  ProcessPoolExecutor& operator=(const ProcessPoolExecutor&) = delete;

  [[nodiscard]] std::string_view name() const noexcept override { return "process"; }
  [[nodiscard]] std::size_t concurrency() const noexcept override;
  [[nodiscard]] bool can_stop_chunks() const noexcept override { return true; }
  void start_run(const RunContext& context) override;
  bool try_submit(const ChunkTask& task) override;
  void request_stop() noexcept override;
  void stop_run() noexcept override;

  /// The pid of the process in worker `slot`: of its last one while its replacement is starting
  /// (replacements start asynchronously, on the run's loop or when the next run starts). Not to be called
  /// from another thread while a run is in progress.
  [[nodiscard]] pid_t worker_pid(std::size_t slot) const;
  /// Channel traffic so far (see ChannelTraffic).
  [[nodiscard]] ChannelTraffic channel_traffic() const noexcept;
  /// The pid of the fork server.
  [[nodiscard]] pid_t fork_server_pid() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpaio
