// SharedMemory: creation (named / anonymous), naming, permissions, unlinking, moves, attaching, errors.
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/error.hpp"
#include "mpaio/shared_memory.hpp"
#include "support/child_process.hpp"

namespace {

namespace fs = std::filesystem;
using mpaio::Access;
using mpaio::SegmentKind;
using mpaio::SharedMemory;

constexpr mpaio::SegmentOptions kNamed{.kind = SegmentKind::named};

/// Whether `name` is `prefix` followed by exactly 16 lowercase hex digits.
/// (Not std::regex: GCC 12 warns falsely inside it under -fsanitize, which -Werror turns into an error.)
bool is_prefix_and_16_hex(const std::string& name, const std::string& prefix) {
  if (name.size() != prefix.size() + 16 || name.compare(0, prefix.size(), prefix) != 0) return false;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    const char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

/// Path of a named segment in /dev/shm.
fs::path shm_path(const std::string& name) { return fs::path("/dev/shm") / mpaio::detail::bare_segment_name(name); }

/// Every entry of /dev/shm whose name contains `needle`.
std::set<std::string> shm_entries_containing(const std::string& needle) {
  std::set<std::string> out;
  for (const auto& entry : fs::directory_iterator("/dev/shm")) {
    const std::string name = entry.path().filename().string();
    if (name.find(needle) != std::string::npos) out.insert(name);
  }
  return out;
}

/// The permission bits /proc/self/maps shows for the mapping that starts at `addr` ("rw-s", "r--s"...).
std::string mapping_permissions(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto want = reinterpret_cast<std::uintptr_t>(addr);
  while (std::getline(maps, line)) {
    const auto dash = line.find('-');
    const std::uintptr_t start = std::stoull(line.substr(0, dash), nullptr, 16);
    if (start == want) return line.substr(line.find(' ') + 1, 4);
  }
  return "not mapped";
}

/// Unlinks a kept segment at the end of a test even when an assertion fails.
struct UnlinkAtExit {
  std::string name;
  ~UnlinkAtExit() {
    if (!name.empty()) ::shm_unlink(name.c_str());
  }
};

/// Creates a plain POSIX segment of `size` bytes with shm_open, bypassing mpaio.
std::string make_raw_segment(std::size_t size) {
  const std::string name = "/mpaio-" + std::to_string(::getpid()) + "-rawtest";
  const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) throw std::runtime_error("shm_open failed: " + std::string(std::strerror(errno)));
  if (size != 0 && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    ::shm_unlink(name.c_str());
    throw std::runtime_error("ftruncate failed");
  }
  ::close(fd);
  return name;
}

TEST(SharedMemory, NamedSegmentNameFormatAndLocation) {
  auto seg = SharedMemory::create(4096, kNamed);
  EXPECT_TRUE(is_prefix_and_16_hex(seg.name(), "/mpaio-" + std::to_string(::getpid()) + "-")) << seg.name();
  EXPECT_EQ(seg.kind(), SegmentKind::named);
  EXPECT_EQ(seg.size(), 4096u);
  EXPECT_TRUE(seg.writable());
  EXPECT_TRUE(seg.owns_name());
  EXPECT_GE(seg.fd(), 0);
  EXPECT_NE(seg.data(), nullptr);
  EXPECT_TRUE(fs::exists(shm_path(seg.name()))) << seg.name();
  EXPECT_EQ(fs::file_size(shm_path(seg.name())), 4096u);
}

TEST(SharedMemory, NamesAreUnique) {
  auto a = SharedMemory::create(64, kNamed);
  auto b = SharedMemory::create(64, kNamed);
  auto c = SharedMemory::create(64);
  auto d = SharedMemory::create(64);
  EXPECT_NE(a.name(), b.name());
  EXPECT_NE(c.name(), d.name());
  EXPECT_NE(a.key(), 0u);
  EXPECT_NE(a.key(), b.key());
  EXPECT_NE(c.key(), d.key());
}

TEST(SharedMemory, AnonymousSegmentNameFormatAndNeverInDevShm) {
  auto seg = SharedMemory::create(4096);
  EXPECT_TRUE(is_prefix_and_16_hex(seg.name(), "memfd:mpaio-" + std::to_string(::getpid()) + "-")) << seg.name();
  EXPECT_EQ(seg.kind(), SegmentKind::anonymous);
  EXPECT_FALSE(seg.owns_name());
  EXPECT_TRUE(seg.writable());
  const std::string suffix = seg.name().substr(std::strlen("memfd:"));
  EXPECT_TRUE(shm_entries_containing(suffix).empty());
  // The descriptor is a memfd: /proc shows its name.
  const auto target = fs::read_symlink("/proc/self/fd/" + std::to_string(seg.fd())).string();
  EXPECT_NE(target.find("/memfd:" + suffix), std::string::npos) << target;
}

TEST(SharedMemory, CreatedZeroFilledAndWritable) {
  for (auto options : {mpaio::SegmentOptions{}, kNamed}) {
    auto seg = SharedMemory::create(10'000, options);
    for (std::size_t i = 0; i < seg.size(); ++i) ASSERT_EQ(seg.data()[i], std::byte{0}) << i;
    std::memset(seg.data(), 0xab, seg.size());
    EXPECT_EQ(seg.data()[9'999], std::byte{0xab});
    EXPECT_EQ(mapping_permissions(seg.data()), "rw-s");
  }
}

TEST(SharedMemory, NamedSegmentHasMode0600) {
  auto seg = SharedMemory::create(128, kNamed);
  struct stat st {};
  ASSERT_EQ(::fstat(seg.fd(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(shm_path(seg.name()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
}

TEST(SharedMemory, ModeIs0600EvenWithPermissiveUmask) {
  const mode_t old = ::umask(0);
  auto seg = SharedMemory::create(128, kNamed);
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::fstat(seg.fd(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(SharedMemory, NamedSegmentUnlinkedOnDestruction) {
  std::string name;
  {
    auto seg = SharedMemory::create(128, kNamed);
    name = seg.name();
    ASSERT_TRUE(fs::exists(shm_path(name)));
  }
  EXPECT_FALSE(fs::exists(shm_path(name))) << name;
  EXPECT_THROW((void)SharedMemory::attach(name), mpaio::SystemError);
}

TEST(SharedMemory, KeepLeavesTheNameBehind) {
  UnlinkAtExit cleanup;
  {
    auto seg = SharedMemory::create(128, {.kind = SegmentKind::named, .keep = true});
    cleanup.name = seg.name();
    EXPECT_FALSE(seg.owns_name());
  }
  EXPECT_TRUE(fs::exists(shm_path(cleanup.name)));
  {
    auto seg = SharedMemory::create(128, kNamed);
    const std::string name = seg.name();
    seg.keep();
    EXPECT_FALSE(seg.owns_name());
    seg = SharedMemory::create(16);  // releases the kept segment without unlinking it
    EXPECT_TRUE(fs::exists(shm_path(name)));
    ASSERT_EQ(::shm_unlink(name.c_str()), 0);
  }
  // A later process can still attach the kept one.
  auto again = SharedMemory::attach(cleanup.name);
  EXPECT_EQ(again.size(), 128u);
}

TEST(SharedMemory, AttachedObjectsNeverUnlink) {
  auto owner = SharedMemory::create(256, kNamed);
  { auto attached = SharedMemory::attach(owner.name()); EXPECT_FALSE(attached.owns_name()); }
  EXPECT_TRUE(fs::exists(shm_path(owner.name())));
}

TEST(SharedMemory, MoveConstructionTransfersOwnership) {
  auto a = SharedMemory::create(4096, kNamed);
  const std::string name = a.name();
  std::byte* data = a.data();
  const int fd = a.fd();
  const auto key = a.key();
  SharedMemory b(std::move(a));
  EXPECT_EQ(b.name(), name);
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b.fd(), fd);
  EXPECT_EQ(b.key(), key);
  EXPECT_EQ(b.size(), 4096u);
  EXPECT_TRUE(b.owns_name());
  // NOLINTBEGIN(bugprone-use-after-move): the moved-from state is part of the contract
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.fd(), -1);
  EXPECT_EQ(a.key(), 0u);
  EXPECT_FALSE(a.owns_name());
  { SharedMemory dropped(std::move(a)); }  // destroying a moved-from object must not unlink the name
  // NOLINTEND(bugprone-use-after-move)
  EXPECT_TRUE(fs::exists(shm_path(name)));
  EXPECT_TRUE(mpaio::detail::segment_alive(key));
}

TEST(SharedMemory, MoveAssignmentReleasesTheOldSegment) {
  auto a = SharedMemory::create(128, kNamed);
  auto b = SharedMemory::create(256, kNamed);
  const std::string a_name = a.name();
  const std::string b_name = b.name();
  const auto a_key = a.key();
  a = std::move(b);
  EXPECT_FALSE(fs::exists(shm_path(a_name))) << "the segment a held must be unlinked";
  EXPECT_FALSE(mpaio::detail::segment_alive(a_key));
  EXPECT_TRUE(fs::exists(shm_path(b_name)));
  EXPECT_EQ(a.name(), b_name);
  EXPECT_EQ(a.size(), 256u);
  a = SharedMemory::create(16);
  EXPECT_FALSE(fs::exists(shm_path(b_name)));
}

TEST(SharedMemory, RegistryFollowsTheSegmentLifetime) {
  std::uint64_t key = 0;
  {
    auto seg = SharedMemory::create(64);
    key = seg.key();
    EXPECT_TRUE(mpaio::detail::segment_alive(key));
    auto found = mpaio::detail::find_segment(seg.name());
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(found->base, seg.data());
    EXPECT_EQ(found->size, 64u);
    EXPECT_TRUE(static_cast<bool>(mpaio::detail::dup_segment_fd(key)));
  }
  EXPECT_FALSE(mpaio::detail::segment_alive(key));
  EXPECT_FALSE(static_cast<bool>(mpaio::detail::dup_segment_fd(key)));
}

TEST(SharedMemory, AttachByNameReadWriteSharesTheBytes) {
  auto owner = SharedMemory::create(8192, kNamed);
  auto other = SharedMemory::attach(owner.name(), Access::read_write);
  EXPECT_EQ(other.name(), owner.name());
  EXPECT_EQ(other.kind(), SegmentKind::named);
  EXPECT_EQ(other.size(), 8192u);
  EXPECT_TRUE(other.writable());
  EXPECT_NE(other.data(), owner.data()) << "a second, separate mapping";
  other.data()[8191] = std::byte{42};
  EXPECT_EQ(owner.data()[8191], std::byte{42});
  owner.data()[0] = std::byte{7};
  EXPECT_EQ(other.data()[0], std::byte{7});
  EXPECT_EQ(mapping_permissions(other.data()), "rw-s");
}

TEST(SharedMemory, AttachByNameReadOnlyMapsReadOnly) {
  auto owner = SharedMemory::create(4096, kNamed);
  owner.data()[100] = std::byte{9};
  auto ro = SharedMemory::attach(owner.name());  // read_only is the default
  EXPECT_FALSE(ro.writable());
  EXPECT_EQ(ro.data()[100], std::byte{9});
  EXPECT_EQ(mapping_permissions(ro.data()), "r--s");
  const int flags = ::fcntl(ro.fd(), F_GETFL);
  EXPECT_EQ(flags & O_ACCMODE, O_RDONLY);
  EXPECT_NE(::fcntl(ro.fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(SharedMemory, AttachAcceptsTheNameWithoutLeadingSlash) {
  auto owner = SharedMemory::create(64, kNamed);
  const std::string bare(mpaio::detail::bare_segment_name(owner.name()));
  ASSERT_NE(bare.front(), '/');
  auto attached = SharedMemory::attach(bare);
  EXPECT_EQ(attached.name(), owner.name());
}

TEST(SharedMemory, AttachAnonymousInTheSameProcess) {
  auto owner = SharedMemory::create(4096);
  owner.data()[5] = std::byte{5};
  auto rw = SharedMemory::attach(owner.name(), Access::read_write);
  EXPECT_EQ(rw.kind(), SegmentKind::anonymous);
  EXPECT_EQ(rw.name(), owner.name());
  EXPECT_EQ(rw.size(), 4096u);
  EXPECT_EQ(rw.data()[5], std::byte{5});
  rw.data()[6] = std::byte{6};
  EXPECT_EQ(owner.data()[6], std::byte{6});
  auto ro = SharedMemory::attach(owner.name());
  EXPECT_FALSE(ro.writable());
  EXPECT_EQ(mapping_permissions(ro.data()), "r--s");
}

TEST(SharedMemory, AnonymousHeldReadOnlyCannotBeAttachedReadWrite) {
  auto owner = SharedMemory::create(64);
  const std::string name = owner.name();
  auto ro = SharedMemory::attach(name);
  owner = SharedMemory::create(16);  // now only the read-only attachment holds it
  try {
    (void)SharedMemory::attach(name, Access::read_write);
    FAIL() << "attached read-write a segment held read-only";
  } catch (const mpaio::SystemError& e) {
    EXPECT_EQ(e.code(), std::errc::permission_denied);
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(SharedMemory, AttachMissingNamedSegmentIsENOENT) {
  const std::string name = "/mpaio-" + std::to_string(::getpid()) + "-doesnotexist0000";
  try {
    (void)SharedMemory::attach(name);
    FAIL() << "attached a segment that does not exist";
  } catch (const mpaio::SystemError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(e.code().value(), ENOENT);
    const std::string what = e.what();
    EXPECT_NE(what.find(name), std::string::npos) << what;
    EXPECT_NE(what.find("shm_open"), std::string::npos) << what;
    EXPECT_NE(what.find(std::strerror(ENOENT)), std::string::npos) << what;
  }
}

TEST(SharedMemory, AttachMissingAnonymousSegmentIsENOENT) {
  const std::string name = "memfd:mpaio-1-0000000000000000";
  try {
    (void)SharedMemory::attach(name);
    FAIL() << "attached an anonymous segment this process does not hold";
  } catch (const mpaio::SystemError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(SharedMemory, EmptyNameIsInvalid) {
  EXPECT_THROW((void)SharedMemory::attach(""), mpaio::InvalidArgument);
  EXPECT_THROW((void)SharedMemory::attach("/"), mpaio::InvalidArgument);
}

TEST(SharedMemory, CreateSizeZeroIsInvalidArgument) {
  EXPECT_THROW((void)SharedMemory::create(0), mpaio::InvalidArgument);
  EXPECT_THROW((void)SharedMemory::create(0, kNamed), mpaio::InvalidArgument);
  EXPECT_TRUE(shm_entries_containing("mpaio-" + std::to_string(::getpid()) + "-").empty());
}

TEST(SharedMemory, AttachEmptySegmentIsInvalidArgument) {
  UnlinkAtExit cleanup{make_raw_segment(0)};
  try {
    (void)SharedMemory::attach(cleanup.name);
    FAIL() << "attached a segment of size 0";
  } catch (const mpaio::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(cleanup.name), std::string::npos) << e.what();
  }
}

TEST(SharedMemory, AttachWithoutPermissionIsEACCES) {
  auto seg = SharedMemory::create(4096, kNamed);
  const std::string name = seg.name();
  if (::geteuid() != 0) {
    // Not root: take our own read permission away; the owner is then refused like anyone else.
    ASSERT_EQ(::fchmod(seg.fd(), 0), 0);
    try {
      (void)SharedMemory::attach(name);
      FAIL() << "attached a segment with mode 0000";
    } catch (const mpaio::SystemError& e) {
      EXPECT_EQ(e.code(), std::errc::permission_denied);
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    return;
  }
  // Root bypasses permission checks: a child drops to nobody (65534) and tries to attach the 0600 segment.
  // Exit codes: 0 = EACCES as expected, 1 = attach succeeded, 2 = another error, 3 = could not drop privileges,
  // 4 = the message does not name the segment.
  const auto result = mpaio_test::run_in_child([&] {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      return 3;
    }
    try {
      (void)SharedMemory::attach(name, Access::read_only);
      return 1;
    } catch (const mpaio::SystemError& e) {
      if (e.code().value() != EACCES) return 2;
      return std::string(e.what()).find(name) == std::string::npos ? 4 : 0;
    }
  });
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
}

TEST(SharedMemory, TooLargeNamedSegmentIsOutOfSharedMemory) {
  struct statvfs st {};
  ASSERT_EQ(::statvfs("/dev/shm", &st), 0);
  const std::uint64_t total = static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
  const std::uint64_t available = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  // More than the whole file system, so the kernel refuses at once instead of filling /dev/shm first.
  const std::uint64_t requested = std::max(total, available) + (std::uint64_t{1} << 30);
  const std::string prefix = "mpaio-" + std::to_string(::getpid()) + "-";
  try {
    auto seg = SharedMemory::create(requested, kNamed);
    FAIL() << "created " << requested << " bytes in a /dev/shm of " << total << " bytes";
  } catch (const mpaio::OutOfSharedMemory& e) {
    EXPECT_EQ(e.requested(), requested);
    EXPECT_GT(e.available(), 0u);
    EXPECT_LE(e.available(), total);
    EXPECT_EQ(e.code(), std::errc::no_space_on_device);
    const std::string what = e.what();
    EXPECT_NE(what.find(std::to_string(requested)), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(e.available())), std::string::npos) << what;
    EXPECT_NE(what.find("/mpaio-"), std::string::npos) << "names the segment: " << what;
  }
  // The failed segment was unlinked, not left half-made in /dev/shm.
  EXPECT_TRUE(shm_entries_containing(prefix).empty());
}

}  // namespace
