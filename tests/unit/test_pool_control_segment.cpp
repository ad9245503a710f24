// Unit tests of a SharedMemoryPool's control segment: formatting it, and recognising a formatted one, over
// plain memory.

#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <thread>

#include "pool/control_segment.hpp"

namespace {

namespace pool = mpaio::detail::pool;

/// Zeroed memory for a control header, as a fresh segment is.
struct HeaderBuffer {
  HeaderBuffer() : bytes(new (std::align_val_t{64}) std::byte[sizeof(pool::ControlHeader)]()) {}
  ~HeaderBuffer() { ::operator delete[](bytes, std::align_val_t{64}); }
  HeaderBuffer(const HeaderBuffer&) = delete;
  HeaderBuffer& operator=(const HeaderBuffer&) = delete;
  pool::ControlHeader& header() { return *reinterpret_cast<pool::ControlHeader*>(bytes); }
  std::byte* bytes;
};

TEST(PoolControlSegment, AFormattedHeaderIsRecognisedWithItsSize) {
  const mpaio::PoolOptions options{.max_blocks = 100, .max_references = 200};
  const std::size_t size = pool::control_size_for(options);
  HeaderBuffer buffer;
  EXPECT_FALSE(pool::is_formatted(buffer.header(), size));
  pool::format_control(buffer.header(), options, size);
  EXPECT_TRUE(pool::is_formatted(buffer.header(), size));
  EXPECT_FALSE(pool::is_formatted(buffer.header(), size + 4096));  // another segment's size: not this pool
  EXPECT_EQ(buffer.header().max_blocks, 100u);
  EXPECT_EQ(buffer.header().max_records, 200u);
  EXPECT_EQ(buffer.header().processes[0].pid, ::getpid());
}

// Issue 11 item 13: a process attaching a pool while its creator was still formatting the control segment
// read `magic` with a plain load, and format() stored it with a plain store after a fence: a data race, so
// nothing guaranteed that the fields written before `magic` were seen by a process that saw `magic`. Here
// one thread formats a header in plain memory while another checks it as PoolCore's constructor does; a
// header seen formatted must be complete. ThreadSanitizer reports the race on `magic` when either side
// is a plain access (the tsan preset halts on it); the other builds check the fields.
TEST(PoolControlSegment, AHeaderSeenFormattedWhileBeingFormattedIsComplete) {
  const mpaio::PoolOptions options{.max_blocks = 100, .max_references = 200};
  const std::size_t size = pool::control_size_for(options);
  for (int round = 0; round < 20; ++round) {
    HeaderBuffer buffer;
    std::atomic<bool> go{false};
    bool complete = false;
    std::thread attacher([&] {
      go.store(true);
      while (!pool::is_formatted(buffer.header(), size)) {
      }
      const pool::ControlHeader& h = buffer.header();
      complete = h.pool_id != 0 && h.max_blocks == 100 && h.max_records == 200 && h.processes[0].pid == ::getpid() &&
                 h.process_count == 1 && h.records_offset > h.blocks_offset;
    });
    while (!go.load()) {
    }
    pool::format_control(buffer.header(), options, size);
    attacher.join();
    EXPECT_TRUE(complete) << "round " << round;
  }
}

}  // namespace
