// Unit tests of ProcFdSegment: a pool's anonymous data segment opened through /proc/<pid>/fd/<fd> of the
// process that holds it, accepted only when the descriptor there is that segment.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "mpaio/pool_error.hpp"
#include "mpaio/shared_memory.hpp"
#include "pool/proc_fd_segment.hpp"

namespace {

using mpaio::SegmentKind;
using mpaio::SharedMemory;
using mpaio::detail::ProcFdSegment;

constexpr std::size_t kSize = 64 << 10;

TEST(PoolProcFdSegment, MapsTheSegmentItNames) {
  auto segment = SharedMemory::create(kSize);
  std::memcpy(segment.data() + 100, "pool", 4);
  ProcFdSegment opened(segment.name(), ::getpid(), segment.fd(), kSize);
  EXPECT_EQ(std::memcmp(opened.data() + 100, "pool", 4), 0);
  opened.data()[200] = std::byte{7};
  EXPECT_EQ(segment.data()[200], std::byte{7});  // the same pages, not a copy
}

// Issue 11 item 12: the descriptor was checked by size only. Once the holder died and its pid was reused,
// another file of the same size open at that number would have been mapped as the segment.
TEST(PoolProcFdSegment, AnotherSegmentOfTheSameSizeAtTheDescriptorIsRejected) {
  auto wanted = SharedMemory::create(kSize);
  auto other = SharedMemory::create(kSize);
  try {
    ProcFdSegment opened(wanted.name(), ::getpid(), other.fd(), kSize);
    FAIL() << "mapped " << other.name() << " as " << wanted.name();
  } catch (const mpaio::PoolCorrupted& e) {
    EXPECT_NE(std::string(e.what()).find(wanted.name()), std::string::npos) << e.what();
  }
}

// Issue 11 item 12: the same for a file that is no memfd at all.
TEST(PoolProcFdSegment, AnOrdinaryFileOfTheSameSizeIsRejected) {
  char path[] = "/tmp/mpaio-proc-fd-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  ASSERT_EQ(::ftruncate(fd, kSize), 0);
  auto wanted = SharedMemory::create(kSize);
  EXPECT_THROW(ProcFdSegment(wanted.name(), ::getpid(), fd, kSize), mpaio::PoolCorrupted);
  ::close(fd);
}

// A segment a non-owner grew is created named; once the owner adopts it, its name is unlinked and other
// processes reach it through the owner's descriptor, under its old name.
TEST(PoolProcFdSegment, AnAdoptedNamedSegmentIsFoundUnderItsUnlinkedName) {
  auto wanted = SharedMemory::create(kSize, {.kind = SegmentKind::named});
  auto other = SharedMemory::create(kSize, {.kind = SegmentKind::named});
  ASSERT_EQ(::shm_unlink(wanted.name().c_str()), 0);
  ASSERT_EQ(::shm_unlink(other.name().c_str()), 0);
  wanted.data()[1] = std::byte{9};
  ProcFdSegment opened(wanted.name(), ::getpid(), wanted.fd(), kSize);
  EXPECT_EQ(opened.data()[1], std::byte{9});
  EXPECT_THROW(ProcFdSegment(wanted.name(), ::getpid(), other.fd(), kSize), mpaio::PoolCorrupted);
}

TEST(PoolProcFdSegment, ASegmentOfAnotherSizeIsRejected) {
  auto wanted = SharedMemory::create(2 * kSize);
  EXPECT_THROW(ProcFdSegment(wanted.name(), ::getpid(), wanted.fd(), kSize), mpaio::PoolCorrupted);
}

}  // namespace
