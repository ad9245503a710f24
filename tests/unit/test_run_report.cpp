#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "mpaio/run_report.hpp"

namespace {

using namespace std::chrono_literals;

/// Two slots, two worker types: slot 0 busy 30 ms of 40, slot 1 busy 10 ms.
mpaio::RunReport sample_report() {
  mpaio::RunReport r;
  r.executor = "process";
  r.concurrency = 2;
  r.wall_time = 40ms;
  r.worker_types = {"AddIntWorker", "ConcatStrWorker"};
  r.chunks = {
      {0, {0, 50}, 0, 1001, 0ms, 10ms, false},
      {0, {50, 100}, 1, 1002, 5ms, 15ms, false},
      {1, {0, 10}, 0, 1001, 10ms, 30ms, false},
  };
  r.cpu = {{200.0, {50.0, 75.5}}, {400.0, {100.0, 0.0}}};
  return r;
}

}  // namespace

TEST(RunReport, TraceJsonHasOneCompleteEventPerChunkOnTheWorkersTrack) {
  const mpaio::RunReport report = sample_report();
  std::ostringstream out;
  report.write_trace_json(out);
  const auto trace = nlohmann::json::parse(out.str());
  ASSERT_TRUE(trace.contains("traceEvents"));
  std::multiset<std::string> slices;
  std::set<int> named_processes;
  for (const auto& e : trace["traceEvents"]) {
    for (const char* key : {"ph", "pid", "tid", "name"}) ASSERT_TRUE(e.contains(key)) << e.dump();
    if (e["ph"] == "M") {
      if (e["name"] == "process_name") named_processes.insert(e["pid"].get<int>());
      continue;
    }
    ASSERT_EQ(e["ph"], "X") << e.dump();
    ASSERT_TRUE(e["ts"].is_number() && e["dur"].is_number()) << e.dump();
    EXPECT_GE(e["dur"].get<double>(), 0.0);
    slices.insert(e["name"].get<std::string>());
  }
  EXPECT_EQ(slices, (std::multiset<std::string>{"AddIntWorker [0, 50)", "AddIntWorker [50, 100)",
                                                 "ConcatStrWorker [0, 10)"}));
  EXPECT_EQ(named_processes, (std::set<int>{1001, 1002}));
  // Microseconds: the chunk that ran 5..15 ms.
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "X" && e["name"] == "AddIntWorker [50, 100)") {
      EXPECT_DOUBLE_EQ(e["ts"].get<double>(), 5000.0);
      EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 10000.0);
      EXPECT_EQ(e["pid"], 1002);
    }
  }
}

TEST(RunReport, InsightsPerSlotAndEfficiency) {
  const mpaio::Insights in = sample_report().insights();
  ASSERT_EQ(in.slots.size(), 2U);
  EXPECT_EQ(in.slots[0].chunks, 2U);
  EXPECT_EQ(in.slots[0].busy, 30ms);
  EXPECT_EQ(in.slots[0].idle, 10ms);
  EXPECT_DOUBLE_EQ(in.slots[0].utilisation, 75.0);
  EXPECT_EQ(in.slots[0].mean_chunk, 15ms);
  EXPECT_EQ(in.slots[0].max_chunk, 20ms);
  EXPECT_EQ(in.slots[1].chunks, 1U);
  EXPECT_EQ(in.slots[1].busy, 10ms);
  EXPECT_DOUBLE_EQ(in.efficiency, 50.0);  // 40 ms busy of 2 x 40 ms
  const std::string text = sample_report().format_insights();
  EXPECT_NE(text.find("efficiency: 50.0%"), std::string::npos) << text;
}

TEST(RunReport, CpuCsvHasATimeColumnAndOneColumnPerCore) {
  std::ostringstream out;
  sample_report().write_cpu_csv(out);
  EXPECT_EQ(out.str(), "time_ms,core_0,core_1\n200.0,50.0,75.5\n400.0,100.0,0.0\n");
}

TEST(RunReport, ChunksCsv) {
  std::ostringstream out;
  sample_report().write_chunks_csv(out);
  std::istringstream in(out.str());
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header, "worker,worker_type,start,end,slot,pid,start_ms,end_ms,failed");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "0,\"AddIntWorker\",0,50,0,1001,0.000,10.000,0");
}

TEST(RunReport, SvgChartsAreDrawnWithGnuplot) {
  ASSERT_TRUE(mpaio::gnuplot_available()) << "gnuplot-nox is in scripts/debian-packages.txt";
  const auto dir = std::filesystem::temp_directory_path();
  const auto timeline = dir / ("mpaio-test-timeline-" + std::to_string(::getpid()) + ".svg");
  const auto cpu = dir / ("mpaio-test-cpu-" + std::to_string(::getpid()) + ".svg");
  sample_report().write_timeline_svg(timeline);
  sample_report().write_cpu_svg(cpu);
  for (const auto& path : {timeline, cpu}) {
    std::ifstream in(path);
    const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(svg.find("<svg"), std::string::npos) << path;
    std::filesystem::remove(path);
  }
}
