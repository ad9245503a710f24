// Ctrl-C in the camera example (examples/camera_pipeline), in a process group of its own as a shell's
// foreground job: SIGINT to the whole group while every stage is busy. It exits within 2 s with status 130
// and the one line "camera_pipeline: interrupted", leaving no process (this test is the subreaper: a leaked
// one would become its child) and no /dev/shm/mpaio-* entry. Also: a short run checks its own results.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/program.hpp"
#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;

#ifdef MPAIO_CAMERA_PIPELINE
constexpr const char* kExample = MPAIO_CAMERA_PIPELINE;
#else
constexpr const char* kExample = nullptr;
#endif

class PipelineInterrupt : public ReliabilityTest {
 protected:
  void SetUp() override {
    if (kExample == nullptr) GTEST_SKIP() << "built without the examples";
  }
};

TEST_F(PipelineInterrupt, AShortRunOfTheCameraExampleChecksEveryFrame) {
  Program example = start({kExample, "--frames", "60", "--in-flight", "4", "--middle-ms", "1", "--replicas", "2",
                           "--order", "completion", "--compare"});
  const auto result = wait_child(example.pid, 60s);
  const std::string out = Program::drain(example.out);
  EXPECT_TRUE(result.exited_with(0)) << result.describe() << "\n" << Program::drain(example.err) << out;
  EXPECT_NE(out.find("60 frames of 480x640x3"), std::string::npos) << out;
  EXPECT_NE(out.find("speed-up"), std::string::npos) << out;
  EXPECT_NE(out.find("size_estimator"), std::string::npos) << out;
}

TEST_F(PipelineInterrupt, CtrlCWhileEveryStageIsBusyExits130Within2sAndLeavesNothing) {
  Subreaper reaper;
  ASSERT_TRUE(reaper.ok());
  Program example = start({kExample, "--frames", "1000000", "--in-flight", "6", "--detector-ms", "2", "--middle-ms",
                           "5", "--aggregator-ms", "1", "--replicas", "2"});
  ASSERT_GT(example.pid, 0);
  std::map<pid_t, std::string> processes;
  // Busy: the fork server and the six stage processes exist, the handler is in, and every stage has run.
  const bool ready = poll_until(
      [&] {
        processes.clear();
        for (pid_t p : descendants_of(example.pid)) {
          const std::string comm = comm_of(p);
          if (comm.rfind("mpaio-", 0) == 0) processes[p] = comm;
        }
        if (processes.size() != 7 || !catches_signal(example.pid, SIGINT)) return false;
        for (const auto& [pid, comm] : processes) {
          const auto st = proc_stat(pid);
          if (comm != "mpaio-forksrv" && (!st || st->utime < 1)) return false;
        }
        return true;
      },
      60s, 1ms);
  ASSERT_TRUE(ready) << "the example never had every stage busy: " << Program::drain(example.err);
  const std::int64_t sent = now_ns();
  ASSERT_EQ(::kill(-example.pid, SIGINT), 0);
  const auto result = wait_child(example.pid, 20s);
  const double ms = ms_between(sent, now_ns());
  record_timing("camera_pipeline exit after SIGINT", ms);
  EXPECT_TRUE(result.exited_with(130)) << result.describe();
  EXPECT_LT(ms, kExitLimitMs);
  EXPECT_EQ(Program::drain(example.err), "camera_pipeline: interrupted\n");
  std::vector<pid_t> pids;
  for (const auto& [pid, comm] : processes) pids.push_back(pid);
  const auto left = wait_gone(pids, 0ms);
  EXPECT_TRUE(left.empty()) << "left running: " << describe_pids(left);
  EXPECT_TRUE(shm_entries_of(example.pid).empty());
}

}  // namespace
