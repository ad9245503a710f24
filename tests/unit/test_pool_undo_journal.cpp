// Unit tests of UndoJournal over plain memory: what set() records, undo in reverse order, commit, and a
// transaction larger than the journal (in a child, over shared memory, to see what it leaves).

#include <signal.h>
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <span>

#include "pool/undo_journal.hpp"
#include "support/child_process.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::detail::JournalEntry;
using mpaio::detail::UndoJournal;

/// Fields, and a journal of four entries over them, in one region.
struct Region {
  std::uint64_t a = 1;
  std::uint64_t b = 2;
  std::uint32_t c = 3;
  std::int32_t d = -4;
  std::uint32_t length = 0;
  JournalEntry entries[4]{};
};

UndoJournal journal_of(Region& r) { return UndoJournal(std::as_writable_bytes(std::span(&r, 1)), r.length, r.entries); }

TEST(PoolUndoJournal, SetWritesTheFieldAndRecordsItsOldValue) {
  Region r;
  UndoJournal journal = journal_of(r);
  journal.set(r.a, std::uint64_t{10});
  journal.set(r.c, std::uint32_t{30});
  EXPECT_EQ(r.a, 10u);
  EXPECT_EQ(r.c, 30u);
  EXPECT_EQ(journal.size(), 2u);
  EXPECT_EQ(r.length, 2u);  // in the region: a process that dies leaves it for the next
  EXPECT_EQ(r.entries[0].old, 1u);
  EXPECT_EQ(r.entries[1].old, 3u);
  EXPECT_EQ(journal.capacity(), 4u);
}

TEST(PoolUndoJournal, UndoRestoresEveryFieldLastChangeFirst) {
  Region r;
  UndoJournal journal = journal_of(r);
  journal.set(r.a, std::uint64_t{10});
  journal.set(r.a, std::uint64_t{20});  // the same field twice: the first old value wins
  journal.set(r.d, std::int32_t{-40});
  journal.set(r.b, std::uint64_t{~0ull});
  journal.undo();
  EXPECT_EQ(r.a, 1u);
  EXPECT_EQ(r.b, 2u);
  EXPECT_EQ(r.c, 3u);
  EXPECT_EQ(r.d, -4);
  EXPECT_EQ(journal.size(), 0u);
  journal.undo();  // nothing left: a second undo changes nothing
  EXPECT_EQ(r.a, 1u);
}

TEST(PoolUndoJournal, UndoResumesWhereAnInterruptedUndoStopped) {
  Region r;
  UndoJournal journal = journal_of(r);
  journal.set(r.a, std::uint64_t{10});
  journal.set(r.a, std::uint64_t{20});
  // A process killed during undo has restored the last entry and dropped it, and no other.
  r.a = 10;
  r.length = 1;
  journal.undo();
  EXPECT_EQ(r.a, 1u);
  EXPECT_EQ(journal.size(), 0u);
}

TEST(PoolUndoJournal, CommitKeepsTheChangesAndEmptiesTheJournal) {
  Region r;
  UndoJournal journal = journal_of(r);
  journal.set(r.b, std::uint64_t{22});
  journal.set(r.c, std::uint32_t{33});
  journal.commit();
  EXPECT_EQ(journal.size(), 0u);
  journal.undo();
  EXPECT_EQ(r.b, 22u);
  EXPECT_EQ(r.c, 33u);
  for (int i = 0; i < 4; ++i) journal.set(r.a, static_cast<std::uint64_t>(100 + i));  // the whole capacity again
  EXPECT_EQ(journal.size(), 4u);
}

// A transaction larger than the journal is a bug: the process aborts before the field changes, so that the
// next process to lock undoes exactly what was journaled.
TEST(PoolUndoJournal, ATransactionLargerThanTheJournalAbortsAndCanStillBeUndone) {
  mpaio_test::Watchdog watchdog(30);
  void* shared = ::mmap(nullptr, sizeof(Region), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* r = new (shared) Region;
  const auto result = mpaio_test::run_in_child([&] {
    UndoJournal journal = journal_of(*r);
    journal.set(r->a, std::uint64_t{10});
    journal.set(r->b, std::uint64_t{20});
    journal.set(r->c, std::uint32_t{30});
    journal.set(r->a, std::uint64_t{40});
    journal.set(r->d, std::int32_t{50});  // the fifth entry: aborts
    return 0;
  });
  EXPECT_EQ(result.signal, SIGABRT) << result.describe();
  EXPECT_EQ(r->length, 4u);
  EXPECT_EQ(r->d, -4) << "the field that did not fit changed";
  EXPECT_EQ(r->a, 40u);
  UndoJournal journal = journal_of(*r);
  journal.undo();
  EXPECT_EQ(r->a, 1u);
  EXPECT_EQ(r->b, 2u);
  EXPECT_EQ(r->c, 3u);
  ::munmap(shared, sizeof(Region));
}

TEST(PoolUndoJournal, AFieldOutsideTheRegionAborts) {
  mpaio_test::Watchdog watchdog(30);
  Region r;
  std::uint64_t elsewhere = 5;
  const auto result = mpaio_test::run_in_child([&] {
    UndoJournal journal = journal_of(r);
    journal.set(elsewhere, std::uint64_t{6});
    return 0;
  });
  EXPECT_EQ(result.signal, SIGABRT) << result.describe();
  EXPECT_EQ(r.length, 0u);
}

}  // namespace
