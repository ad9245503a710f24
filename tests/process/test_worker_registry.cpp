// Worker types travel between processes as registered ids, never as function addresses: an id is the same in
// separate executions of one program (where, under ASLR, addresses are not), and a process that does not know
// an id fails that chunk with an error that names it.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/mpaio.hpp"
#include "support/watchdog.hpp"

extern char** environ;

namespace {

struct RegisteredWorker : mpaio::Worker<RegisteredWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range r) { return data[r.start]; }
  void process_callback(std::int64_t) {}
};

mpaio::ArrayMeta some_meta() { return mpaio::ArrayMeta{"unused", mpaio::dtype_of<std::int64_t>(), {4}, 0}; }

/// "<id> <address of the chunk function>" of RegisteredWorker in this execution.
std::string id_and_address() {
  const RegisteredWorker worker{mpaio::DataIterator::chunks(some_meta(), 1)};
  return std::to_string(worker.worker_type()) + " " +
         std::to_string(reinterpret_cast<std::uintptr_t>(worker.chunk_function()));
}

/// Runs this test program again (a new execution, not a fork of this one) and returns what it wrote.
std::string run_again() {
  const std::string out = "/tmp/mpaio-test-worker-id-" + std::to_string(::getpid());
  std::remove(out.c_str());
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("MPAIO_TEST_WORKER_ID_FILE=" + out);
  std::vector<char*> env;
  for (auto& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::string self = "/proc/self/exe";
  std::string filter = "--gtest_filter=WorkerRegistry.WritesItsIdWhenAskedAndKnowsItsTypes";
  char* argv[] = {self.data(), filter.data(), nullptr};
  pid_t pid = 0;
  EXPECT_EQ(::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, env.data()), 0);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  std::remove(out.c_str());
  return line;
}

TEST(WorkerRegistry, WritesItsIdWhenAskedAndKnowsItsTypes) {
  const RegisteredWorker worker{mpaio::DataIterator::chunks(some_meta(), 1)};
  const mpaio::detail::WorkerType* type = mpaio::detail::find_worker_type(worker.worker_type());
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(type->run, worker.chunk_function());
  EXPECT_NE(type->name.find("RegisteredWorker"), std::string::npos) << type->name;
  if (const char* file = std::getenv("MPAIO_TEST_WORKER_ID_FILE")) std::ofstream(file) << id_and_address() << "\n";
}

TEST(WorkerRegistry, AnIdIsTheSameInSeparateExecutionsOfTheProgram) {
  mpaio_test::Watchdog watchdog(60);
  const std::string here = id_and_address();
  const std::string first = run_again();
  const std::string second = run_again();
  auto id_of = [](const std::string& s) { return s.substr(0, s.find(' ')); };
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(id_of(first), id_of(here));
  EXPECT_EQ(id_of(second), id_of(here));
  std::ifstream aslr("/proc/sys/kernel/randomize_va_space");
  int randomized = 0;
  aslr >> randomized;
  if (randomized != 0) {
    // Why an id: the function's address is not the same from one execution to the next.
    EXPECT_TRUE(first != here || second != here) << "addresses: " << here << ", " << first << ", " << second;
  }
}

/// Receives the outcome of one chunk, on the run's loop.
struct OneOutcome final : mpaio::RunSink {
  void on_chunk_done(const mpaio::ChunkOutcome& outcome) noexcept override {
    failure = outcome.failure;
    type = std::string(outcome.error_type);
    message = std::string(outcome.error_message);
    done = true;
  }
  void on_room() noexcept override {}
  bool done = false;
  mpaio::ChunkFailure failure = mpaio::ChunkFailure::none;
  std::string type, message;
};

TEST(WorkerRegistry, AWorkerProcessFailsAChunkOfAnUnknownWorkerTypeNamingTheId) {
  mpaio_test::Watchdog watchdog(60);
  mpaio::ProcessPoolExecutor pool{{.workers = 1}};
  auto ints = mpaio::SharedArray<std::int64_t>::create({4});
  RegisteredWorker worker{mpaio::DataIterator::chunks(ints.meta(), 2)};
  mpaio::WorkerOrchestrator orchestrator{pool, {&worker}};
  (void)orchestrator.run_blocking();  // binds the array to the worker process for the run below
  const auto segment = mpaio::detail::find_segment(ints.meta().shm_name);
  ASSERT_TRUE(segment);
  const mpaio::detail::UniqueFd fd = mpaio::detail::dup_segment_fd(segment->key);
  const mpaio::RunArray array{ints.meta(), segment->key, fd.get(), segment->size, segment->base};
  asio::io_context io;
  OneOutcome sink;
  pool.start_run(mpaio::RunContext{io.get_executor(), &sink, {&array, 1}, {}});
  constexpr mpaio::detail::WorkerTypeId kUnknown = 0x0123456789abcdefULL;
  ASSERT_TRUE(pool.try_submit(mpaio::ChunkTask{0, worker.chunk_function(), kUnknown, 0, mpaio::kNoRunParams, {0, 2}}));
  while (!sink.done && io.run_one() > 0) {
  }
  pool.stop_run();
  ASSERT_TRUE(sink.done);
  EXPECT_EQ(sink.failure, mpaio::ChunkFailure::exception);
  EXPECT_EQ(sink.type, "mpaio::InvalidArgument");
  EXPECT_NE(sink.message.find("0x0123456789abcdef"), std::string::npos) << sink.message;
  EXPECT_NE(sink.message.find("not registered"), std::string::npos) << sink.message;
}

}  // namespace
