#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "mpaio/progress_bar.hpp"

namespace {

/// Everything readable from `fd` now.
std::string drain(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

struct Pty {
  int master = -1;
  int slave = -1;
  Pty() {
    if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) throw std::runtime_error("openpty failed");
  }
  ~Pty() {
    ::close(master);
    ::close(slave);
  }
};

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
  }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

}  // namespace

TEST(ProgressBar, RendersCountsPercentRateAndEta) {
  const std::string line = mpaio::ProgressBar::render(250, 1000, 2'500'000, 10'000'000, 0.5);
  EXPECT_NE(line.find("250/1000 chunks"), std::string::npos) << line;
  EXPECT_NE(line.find("25.0%"), std::string::npos) << line;
  EXPECT_NE(line.find("5.0M elements/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:02"), std::string::npos) << line;  // 7.5M left at 5M/s: 1.5 s, rounded up
  EXPECT_EQ(line.rfind("[######------------------]", 0), 0U) << line;
}

TEST(ProgressBar, CountsWhatItIsToldToCount) {
  const std::string line = mpaio::ProgressBar::render(30, 120, 30, 120, 1.0, "frames", "frames");
  EXPECT_NE(line.find("30/120 frames"), std::string::npos) << line;
  EXPECT_NE(line.find("30 frames/s"), std::string::npos) << line;
  EXPECT_EQ(line.find("chunks"), std::string::npos) << line;
}

TEST(ProgressBar, DrawsInPlaceOnATerminalAndFinishesWithALine) {
  Pty pty;
  {
    mpaio::ProgressBar bar(10, 100, {.mode = mpaio::ProgressMode::automatic, .fd = pty.slave,
                                     .min_interval = std::chrono::milliseconds(0)});
    ASSERT_TRUE(bar.enabled());
    bar.update(3, 30);
    bar.update(7, 70);
    bar.finish();
  }
  const std::string out = drain(pty.master);
  EXPECT_NE(out.find("\r[#######-----------------]  3/10 chunks"), std::string::npos) << out;
  EXPECT_NE(out.find("7/10 chunks"), std::string::npos) << out;
  ASSERT_TRUE(out.ends_with("\n")) << out;
  const std::string body = out.substr(0, out.find_last_not_of("\r\n") + 1);  // the tty writes "\n" as "\r\n"
  const auto last_cr = body.rfind('\r');
  ASSERT_NE(last_cr, std::string::npos);
  EXPECT_EQ(body.find("7/10 chunks in", last_cr), last_cr + 1) << "the final line is the summary: " << out;
}

TEST(ProgressBar, RedrawsAtMostTenTimesASecond) {
  Pty pty;
  mpaio::ProgressBar bar(100000, 100000, {.mode = mpaio::ProgressMode::automatic, .fd = pty.slave});
  for (std::size_t i = 1; i <= 100000; ++i) bar.update(i, i);  // a tight loop: far faster than 100 ms
  const std::string out = drain(pty.master);
  std::size_t draws = 0;
  for (char c : out) draws += c == '\r' ? 1 : 0;
  EXPECT_GE(draws, 1U);
  EXPECT_LE(draws, 3U) << out;
}

TEST(ProgressBar, SilentWhenNotATerminalUnlessForced) {
  Pipe pipe;
  {
    mpaio::ProgressBar bar(10, 10, {.mode = mpaio::ProgressMode::automatic, .fd = pipe.fds[1]});
    EXPECT_FALSE(bar.enabled());
    bar.update(5, 5);
    bar.finish();
  }
  EXPECT_EQ(drain(pipe.fds[0]), "");
  {
    mpaio::ProgressBar bar(10, 10, {.mode = mpaio::ProgressMode::always, .fd = pipe.fds[1],
                                    .min_interval = std::chrono::milliseconds(0)});
    EXPECT_TRUE(bar.enabled());
    bar.update(5, 5);
  }  // the destructor finishes the line
  const std::string out = drain(pipe.fds[0]);
  EXPECT_NE(out.find("5/10 chunks"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\n")) << out;
}

TEST(ProgressBar, OffDrawsNothingEvenOnATerminal) {
  Pty pty;
  {
    mpaio::ProgressBar bar(10, 10, {.mode = mpaio::ProgressMode::off, .fd = pty.slave});
    EXPECT_FALSE(bar.enabled());
    bar.update(10, 10);
  }
  EXPECT_EQ(drain(pty.master), "");
}
