// Reliability: /dev/shm too small for an array. In a forked child with a mount namespace of its own (as root:
// unshare(CLONE_NEWNS), mounts made private, a 1 MiB tmpfs mounted on /dev/shm), creating an 8 MiB named
// segment throws OutOfSharedMemory naming the bytes requested and available; so does SharedArray::create;
// no SIGBUS ever (the child exits normally), and a segment that fits is fully writable at once (its pages
// were reserved at creation). Where the mount is not permitted, the test falls back to the real /dev/shm:
// requests larger than its whole size (which tmpfs refuses before it allocates anything, so that nothing
// else on the machine sees it full) fail the same way, with the same message, and a segment that fits is
// written and read back, in a child that must exit normally (no SIGBUS).
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "support/child_process.hpp"
#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;

constexpr std::size_t kMiB = 1024 * 1024;
constexpr int kCannotMount = 77;

std::uint64_t shm_available() {
  struct statvfs st {};
  if (::statvfs("/dev/shm", &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

std::uint64_t shm_total() {
  struct statvfs st {};
  if (::statvfs("/dev/shm", &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
}

/// In the child: expects OutOfSharedMemory from `create` for `requested` bytes, with `available` bytes
/// available (on a /dev/shm others use too, where that figure moves: any figure below the request), both
/// named in the message; returns 0 when all is well, else prints why and returns `code`.
template <class Create>
int expect_out_of_shm(const char* what, Create create, std::uint64_t requested, std::optional<std::uint64_t> available,
                      int code) {
  try {
    create();
    std::fprintf(stderr, "%s: no exception\n", what);
    return code;
  } catch (const mpaio::OutOfSharedMemory& e) {
    const std::string msg = e.what();
    const bool available_ok = available ? e.available() == *available : e.available() < requested;
    bool ok = e.requested() == requested && available_ok &&
              msg.find("requested " + std::to_string(requested) + " bytes") != std::string::npos &&
              msg.find(std::to_string(e.available()) + " available") != std::string::npos &&
              e.code().value() == ENOSPC;
    if (!ok) {
      std::fprintf(stderr, "%s: requested %llu (want %llu), available %llu (want %s), errno %d, message: %s\n", what,
                   static_cast<unsigned long long>(e.requested()), static_cast<unsigned long long>(requested),
                   static_cast<unsigned long long>(e.available()),
                   available ? std::to_string(*available).c_str() : "below the request", e.code().value(), msg.c_str());
      return code;
    }
    std::printf("[message] %s\n", msg.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: wrong exception: %s\n", what, e.what());
    return code;
  }
}

/// Counts the mpaio-* entries of /dev/shm.
std::size_t mpaio_entries() {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    n += entry.path().filename().string().rfind("mpaio-", 0) == 0;
  }
  return n;
}

class reliability_ShmFull : public ReliabilityTest {};

TEST_F(reliability_ShmFull, ASmallTmpfsOnDevShmGivesOutOfSharedMemoryNeverSigbus) {
  const auto result = mpaio_test::run_in_child(
      [] {
        if (::unshare(CLONE_NEWNS) != 0) {
          std::fprintf(stderr, "unshare(CLONE_NEWNS): %s\n", std::strerror(errno));
          return kCannotMount;
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777") != 0) {
          std::fprintf(stderr, "mount: %s\n", std::strerror(errno));
          return kCannotMount;
        }
        const std::uint64_t available = shm_available();
        if (available == 0 || available > kMiB) {
          std::fprintf(stderr, "the private /dev/shm has %llu bytes available\n", static_cast<unsigned long long>(available));
          return 10;
        }
        if (int rc = expect_out_of_shm(
                "SharedMemory::create",
                [] { (void)mpaio::SharedMemory::create(8 * kMiB, {.kind = mpaio::SegmentKind::named}); }, 8 * kMiB,
                available, 11)) {
          return rc;
        }
        if (int rc = expect_out_of_shm(
                "SharedArray::create",
                [] { (void)mpaio::SharedArray<double>::create({kMiB}, {.kind = mpaio::SegmentKind::named}); },
                8 * kMiB, available, 12)) {
          return rc;
        }
        if (mpaio_entries() != 0) {
          std::fprintf(stderr, "a failed creation left its name in /dev/shm\n");
          return 13;
        }
        // What fits is reserved at creation: writing every page of it cannot SIGBUS, and the next request
        // that does not fit beside it fails at creation, not at first write.
        auto half = mpaio::SharedArray<std::int64_t>::create({kMiB / 2 / 8}, {.kind = mpaio::SegmentKind::named});
        for (auto& v : half) v = 7;
        const std::uint64_t left = shm_available();
        if (int rc = expect_out_of_shm(
                "SharedMemory::create beside a reserved one",
                [] { (void)mpaio::SharedMemory::create(kMiB * 3 / 4, {.kind = mpaio::SegmentKind::named}); },
                kMiB * 3 / 4, left, 14)) {
          return rc;
        }
        for (auto& v : half) v += 1;
        return half[0] == 8 && half[half.size() - 1] == 8 ? 0 : 15;
      },
      30s);
  if (result.exited_with(kCannotMount)) {
    std::printf("[note] unshare/mount not permitted: falling back to requests larger than /dev/shm\n");
    const auto fallback = mpaio_test::run_in_child(
        [] {
          // Larger than the whole of /dev/shm: posix_fallocate on tmpfs refuses it before allocating anything.
          const std::uint64_t requested = (shm_total() + 64 * kMiB) / 8 * 8;
          if (int rc = expect_out_of_shm(
                  "SharedMemory::create",
                  [&] { (void)mpaio::SharedMemory::create(requested, {.kind = mpaio::SegmentKind::named}); },
                  requested, std::nullopt, 21)) {
            return rc;
          }
          if (int rc = expect_out_of_shm(
                  "SharedArray::create",
                  [&] {
                    (void)mpaio::SharedArray<std::int64_t>::create({requested / 8},
                                                                   {.kind = mpaio::SegmentKind::named});
                  },
                  requested, std::nullopt, 22)) {
            return rc;
          }
          if (!shm_entries_of(::getpid()).empty()) {
            std::fprintf(stderr, "a failed creation left its name in /dev/shm\n");
            return 23;
          }
          // What fits is reserved at creation and writable at once, before and after a refused request.
          auto fits = mpaio::SharedArray<std::int64_t>::create({kMiB / 8}, {.kind = mpaio::SegmentKind::named});
          for (auto& v : fits) v = 7;
          if (int rc = expect_out_of_shm(
                  "SharedMemory::create beside a reserved one",
                  [&] { (void)mpaio::SharedMemory::create(requested, {.kind = mpaio::SegmentKind::named}); },
                  requested, std::nullopt, 24)) {
            return rc;
          }
          for (auto& v : fits) v += 1;
          return fits[0] == 8 && fits[fits.size() - 1] == 8 ? 0 : 25;
        },
        60s);
    EXPECT_TRUE(fallback.exited_with(0)) << "the child " << fallback.describe() << " (a SIGBUS would be signal 7)";
    return;
  }
  EXPECT_TRUE(result.exited_with(0)) << "the child " << result.describe() << " (a SIGBUS would be signal 7)";
}

TEST_F(reliability_ShmFull, AnonymousSegmentsAreNotLimitedByDevShm) {
  // memfd segments live on the kernel's internal tmpfs: a small /dev/shm does not affect them.
  const auto result = mpaio_test::run_in_child(
      [] {
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777") != 0) {
          return kCannotMount;
        }
        auto a = mpaio::SharedArray<std::int64_t>::create({kMiB});  // 8 MiB, anonymous
        for (auto& v : a) v = 1;
        return a[kMiB - 1] == 1 ? 0 : 1;
      },
      30s);
  if (result.exited_with(kCannotMount)) GTEST_SKIP() << "unshare/mount not permitted";
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
}

}  // namespace
