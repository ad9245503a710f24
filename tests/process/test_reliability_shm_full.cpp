// Reliability: /dev/shm too small for an array. In a forked child with a mount namespace of its own (as root:
// unshare(CLONE_NEWNS), mounts made private, a 1 MiB tmpfs mounted on /dev/shm), creating an 8 MiB named
// segment throws OutOfSharedMemory naming the bytes requested and available; so does SharedArray::create;
// no SIGBUS ever (the child exits normally), and a segment that fits is fully writable at once (its pages
// were reserved at creation). Where the mount is not permitted, the test falls back to requesting more than
// statvfs("/dev/shm") reports available.
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
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

/// In the child: expects OutOfSharedMemory from `create` for `requested` bytes; returns 0 when all is
/// well, else prints why and returns `code`.
template <class Create>
int expect_out_of_shm(const char* what, Create create, std::uint64_t requested, std::uint64_t available, int code) {
  try {
    create();
    std::fprintf(stderr, "%s: no exception\n", what);
    return code;
  } catch (const mpaio::OutOfSharedMemory& e) {
    const std::string msg = e.what();
    bool ok = e.requested() == requested && e.available() == available &&
              msg.find(std::to_string(requested)) != std::string::npos &&
              msg.find(std::to_string(available)) != std::string::npos && e.code().value() == ENOSPC;
    if (!ok) {
      std::fprintf(stderr, "%s: requested %llu (want %llu), available %llu (want %llu), errno %d, message: %s\n", what,
                   static_cast<unsigned long long>(e.requested()), static_cast<unsigned long long>(requested),
                   static_cast<unsigned long long>(e.available()), static_cast<unsigned long long>(available),
                   e.code().value(), msg.c_str());
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
    // No mount namespace here: the next best thing, on the real /dev/shm (posix_fallocate on tmpfs checks
    // the size limit before it allocates anything).
    std::printf("[note] unshare/mount not permitted: falling back to a request larger than /dev/shm\n");
    const auto fallback = mpaio_test::run_in_child(
        [] {
          const std::uint64_t available = shm_available();
          const std::uint64_t requested = available + 64 * kMiB;
          // The exact figure is racy on a shared /dev/shm: only check that the available one is below the request.
          try {
            (void)mpaio::SharedMemory::create(requested, {.kind = mpaio::SegmentKind::named});
            return 20;
          } catch (const mpaio::OutOfSharedMemory& e) {
            return e.requested() == requested && e.available() < requested ? 0 : 21;
          }
        },
        60s);
    EXPECT_TRUE(fallback.exited_with(0)) << fallback.describe();
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
