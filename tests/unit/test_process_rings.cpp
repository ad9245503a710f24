// The rings of the process layer over plain memory, in one process: the fixed-record task ring and the
// variable-record ring (both ends, the validating reader), and the wake-up protocol (event count, doorbell).
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "mpaio/detail/unique_fd.hpp"
#include "process/record_ring.hpp"
#include "process/task_ring.hpp"
#include "process/wakeup.hpp"
#include "support/poll.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::detail::RecordHeader;
using mpaio::detail::RecordReader;
using mpaio::detail::RecordRingState;
using mpaio::detail::RecordWriter;

// ---- task ring ---------------------------------------------------------------------------------------------------

struct Item {
  std::uint64_t value;
  std::uint64_t check;
};
using Ring = mpaio::detail::TaskRingState<Item, 8>;
using Writer = mpaio::detail::TaskRingWriter<Item, 8>;
using Reader = mpaio::detail::TaskRingReader<Item, 8>;

TEST(TaskRing, KeepsOrderRefusesWhenFullAndWrapsAround) {
  Ring ring;
  Writer writer(ring);
  Reader reader(ring);
  EXPECT_TRUE(reader.empty());
  EXPECT_FALSE(reader.try_pop());
  std::uint64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 5; ++round) {  // 5 rounds of 8 go around the 8 places 5 times
    while (writer.try_push({next_in, ~next_in})) ++next_in;
    EXPECT_EQ(writer.room(), 0u);
    EXPECT_EQ(reader.available(), 8u);
    EXPECT_FALSE(writer.try_push({99, 99})) << "a full ring takes nothing";
    for (int k = 0; k < 8; ++k) {
      const auto item = reader.try_pop();
      ASSERT_TRUE(item);
      EXPECT_EQ(item->value, next_out);
      EXPECT_EQ(item->check, ~next_out);
      ++next_out;
    }
    EXPECT_TRUE(reader.empty());
  }
  EXPECT_EQ(writer.position(), 40u);
}

TEST(TaskRing, OneProducerAndOneConsumerThreadSeeEveryRecordInOrder) {
  mpaio_test::Watchdog watchdog(60);
  Ring ring;
  constexpr std::uint64_t kCount = 200'000;
  std::thread producer([&] {
    Writer writer(ring);
    for (std::uint64_t i = 0; i < kCount;) {
      if (writer.try_push({i, i * 31 + 7})) ++i;
    }
  });
  Reader reader(ring);
  std::uint64_t bad = 0;
  for (std::uint64_t expected = 0; expected < kCount;) {
    if (auto item = reader.try_pop()) {
      bad += item->value != expected || item->check != expected * 31 + 7;
      ++expected;
    }
  }
  producer.join();
  EXPECT_EQ(bad, 0u);
}

// ---- record ring -------------------------------------------------------------------------------------------------

struct Buffer {
  explicit Buffer(std::size_t bytes) : ring(bytes) {}
  RecordRingState state;
  std::vector<std::byte> ring;
  RecordWriter writer() { return RecordWriter(state, ring); }
  RecordReader reader() { return RecordReader(state, ring); }
};

std::vector<std::byte> bytes(std::size_t n, int seed) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((seed * 131 + i) & 0xff);
  return out;
}

TEST(RecordRing, ARecordComesBackWithItsKindAndBody) {
  Buffer b(1024);
  auto writer = b.writer();
  auto reader = b.reader();
  RecordReader::Record record;
  EXPECT_EQ(reader.peek(record), RecordReader::Status::empty);
  const auto body = bytes(13, 1);
  ASSERT_TRUE(writer.try_write(7, {body}));
  ASSERT_EQ(reader.peek(record), RecordReader::Status::ready);
  EXPECT_EQ(record.kind, 7u);
  ASSERT_EQ(record.body.size(), 13u);
  EXPECT_EQ(std::memcmp(record.body.data(), body.data(), body.size()), 0);
  reader.consume();
  reader.publish();
  EXPECT_EQ(reader.peek(record), RecordReader::Status::empty);
  EXPECT_EQ(b.state.tail.load(), 24u) << "padded to 8 bytes";
}

TEST(RecordRing, ARecordThatWouldStraddleTheEndStartsAfterAPaddingRecord) {
  Buffer b(256);
  auto writer = b.writer();
  auto reader = b.reader();
  RecordReader::Record record;
  // 200 bytes used (a 192-byte body + header), consumed: the next record of 64 bytes does not fit in the 56
  // left before the end, so the writer pads them and writes at 0.
  ASSERT_TRUE(writer.try_write(1, {bytes(192, 1)}));
  ASSERT_EQ(reader.peek(record), RecordReader::Status::ready);
  reader.consume();
  reader.publish();
  const auto body = bytes(56, 2);
  ASSERT_TRUE(writer.try_write(2, {body}));
  EXPECT_EQ(b.state.head.load(), 200u + 56u + 64u);
  RecordHeader pad{};
  std::memcpy(&pad, b.ring.data() + 200, sizeof pad);
  EXPECT_EQ(pad.kind, mpaio::detail::kPadKind);
  EXPECT_EQ(pad.size, 56u);
  ASSERT_EQ(reader.peek(record), RecordReader::Status::ready) << "the padding is skipped";
  EXPECT_EQ(record.kind, 2u);
  EXPECT_EQ(record.body.data(), b.ring.data() + sizeof(RecordHeader)) << "the record starts at offset 0";
  EXPECT_EQ(std::memcmp(record.body.data(), body.data(), body.size()), 0);
}

TEST(RecordRing, AFullRingRefusesARecordUntilTheReaderHandsSpaceBack) {
  Buffer b(256);
  auto writer = b.writer();
  auto reader = b.reader();
  EXPECT_EQ(writer.max_body(), 120u);
  ASSERT_TRUE(writer.try_write(1, {bytes(120, 1)}));
  ASSERT_TRUE(writer.try_write(1, {bytes(120, 2)}));
  EXPECT_FALSE(writer.fits(0));
  EXPECT_FALSE(writer.try_write(1, {bytes(8, 3)})) << "nothing is written into a full ring";
  RecordReader::Record record;
  ASSERT_EQ(reader.peek(record), RecordReader::Status::ready);
  reader.consume();
  EXPECT_FALSE(writer.fits(8)) << "consumed but not handed back";
  reader.publish();
  EXPECT_TRUE(writer.fits(8));
  EXPECT_TRUE(writer.try_write(1, {bytes(8, 3)}));
}

TEST(RecordRing, ABodyIsTheConcatenationOfItsParts) {
  Buffer b(512);
  auto writer = b.writer();
  auto reader = b.reader();
  const auto a = bytes(5, 1), c = bytes(9, 2);
  ASSERT_TRUE(writer.try_write(3, {a, {}, c}));
  RecordReader::Record record;
  ASSERT_EQ(reader.peek(record), RecordReader::Status::ready);
  EXPECT_EQ(std::memcmp(record.body.data(), a.data(), 5), 0);
  EXPECT_EQ(std::memcmp(record.body.data() + 5, c.data(), 9), 0);
}

/// Publishes `header` at the ring's current head as if a producer had written it, `published` bytes in all.
void forge(Buffer& b, RecordHeader header, std::uint64_t published) {
  const std::uint64_t head = b.state.head.load();
  std::memcpy(b.ring.data() + head % b.ring.size(), &header, sizeof header);
  b.state.head.store(head + published);
}

TEST(RecordRing, TheReaderRejectsImpossibleHeaders) {
  struct Case {
    const char* what;
    RecordHeader header;
    std::uint64_t published;
  };
  const Case cases[] = {
      {"size below the header", {4, 1}, 8},
      {"padded size past what was published", {20, 1}, 16},
      {"size past the end of the ring", {512, 1}, 512},
      {"size past what was published", {64, 1}, 32},
      {"padding that stops before the end", {64, mpaio::detail::kPadKind}, 64},
      {"more published than the ring holds", {16, 1}, 1024},
  };
  for (const Case& c : cases) {
    Buffer b(256);
    auto reader = b.reader();
    forge(b, c.header, c.published);
    RecordReader::Record record;
    EXPECT_EQ(reader.peek(record), RecordReader::Status::malformed) << c.what;
  }
}

TEST(RecordRing, AHalfWrittenRecordIsNotSeen) {
  // The producer writes the record, then publishes the head: a producer that dies in between leaves nothing
  // the reader can see, whatever the bytes say.
  Buffer b(256);
  auto reader = b.reader();
  const RecordHeader header{64, 1};
  std::memcpy(b.ring.data(), &header, sizeof header);
  RecordReader::Record record;
  EXPECT_EQ(reader.peek(record), RecordReader::Status::empty);
  EXPECT_FALSE(reader.pending());
}

TEST(RecordRing, OneProducerAndOneConsumerThreadPassRecordsOfEverySize) {
  mpaio_test::Watchdog watchdog(60);
  Buffer b(4096);
  constexpr int kCount = 200'000;
  std::thread producer([&] {
    auto writer = b.writer();
    std::mt19937 rng(1);
    for (int i = 0; i < kCount;) {
      const std::size_t n = rng() % (writer.max_body() + 1);
      std::vector<std::byte> body(std::max<std::size_t>(n, sizeof(int)));
      std::memcpy(body.data(), &i, sizeof i);
      for (std::size_t k = sizeof i; k < body.size(); ++k) body[k] = static_cast<std::byte>((i + k) & 0xff);
      if (writer.try_write(static_cast<std::uint32_t>(body.size()), {body})) ++i;
    }
  });
  auto reader = b.reader();
  int bad = 0;
  for (int expected = 0; expected < kCount;) {
    RecordReader::Record record;
    const auto status = reader.peek(record);
    ASSERT_NE(status, RecordReader::Status::malformed);
    if (status == RecordReader::Status::empty) continue;
    int seen = -1;
    std::memcpy(&seen, record.body.data(), sizeof seen);
    bool ok = seen == expected && record.body.size() >= record.kind;
    for (std::size_t k = sizeof seen; ok && k < record.kind; ++k) ok = record.body[k] == static_cast<std::byte>((seen + k) & 0xff);
    bad += !ok;
    reader.consume();
    reader.publish();
    ++expected;
  }
  producer.join();
  EXPECT_EQ(bad, 0);
}

// ---- wake-up ---------------------------------------------------------------------------------------------------

// Issue 11 item 5: two threads of one process may sleep on its event count at once, each for its own
// condition (the worker's main thread for a task, a thread that logs for ring space). A notification must wake
// both: one that woke a single sleeper could wake the one whose condition still does not hold, and the other
// would sleep on with its condition true (a queued task never seen). Here B sleeps first, then A; A's
// condition becomes true and one notification is made: A must wake although B was first in line.
TEST(EventCount, ANotificationWakesEverySleeperWhateverItWaitsFor) {
  mpaio_test::Watchdog watchdog(30);
  mpaio::detail::EventCountState ec;
  std::atomic<bool> a_ready{false}, b_ready{false};
  std::atomic<bool> a_woke{false};
  std::thread b([&] { mpaio::detail::wait_until(ec, [&] { return b_ready.load(); }, 0); });
  ASSERT_TRUE(mpaio_test::poll_until([&] { return ec.waiters.load() == 1; }, std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // B is in futex_wait, first in line
  std::thread a([&] {
    mpaio::detail::wait_until(ec, [&] { return a_ready.load(); }, 0);
    a_woke = true;
  });
  ASSERT_TRUE(mpaio_test::poll_until([&] { return ec.waiters.load() == 2; }, std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  a_ready = true;
  mpaio::detail::notify(ec);
  EXPECT_TRUE(mpaio_test::poll_until([&] { return a_woke.load(); }, std::chrono::seconds(5))) << "A slept on";
  b_ready = true;
  mpaio::detail::notify(ec);
  a.join();
  b.join();
  EXPECT_EQ(ec.waiters.load(), 0u);
}

TEST(EventCount, ASleeperNeverMissesANotificationMadeWhileItGoesToSleep) {
  mpaio_test::Watchdog watchdog(60);
  mpaio::detail::EventCountState ec;
  std::atomic<std::uint64_t> published{0};
  constexpr std::uint64_t kRounds = 20'000;
  std::thread consumer([&] {
    for (std::uint64_t seen = 0; seen < kRounds; ++seen) {
      mpaio::detail::wait_until(ec, [&] { return published.load(std::memory_order_acquire) > seen; }, 0);
    }
  });
  for (std::uint64_t i = 1; i <= kRounds; ++i) {
    published.store(i, std::memory_order_release);
    mpaio::detail::notify(ec);
    if (i % 64 == 0) std::this_thread::yield();
  }
  consumer.join();  // a lost wake-up would hang here (the Watchdog fails it)
}

TEST(Doorbell, RingsOncePerArmingAndOnlyWhenArmed) {
  mpaio::detail::UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(fd);
  mpaio::detail::DoorbellState bell;
  EXPECT_FALSE(mpaio::detail::ring(bell, fd.get())) << "not armed: the consumer is awake and will look";
  mpaio::detail::arm(bell);
  EXPECT_TRUE(mpaio::detail::ring(bell, fd.get()));
  EXPECT_FALSE(mpaio::detail::ring(bell, fd.get())) << "once per arming";
  std::uint64_t count = 0;
  ASSERT_EQ(::read(fd.get(), &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_EQ(count, 1u);
}

}  // namespace
