#include "mpaio/detail/segment_registry.hpp"

#include <map>
#include <mutex>

namespace mpaio::detail {

namespace {

struct Entry {
  std::string name;
  int fd;
  SegmentInfo info;
};

struct Registry {
  std::mutex mutex;
  std::uint64_t next_key = 1;
  std::map<std::uint64_t, Entry> by_key;
};

Registry& registry() {
  static Registry* instance = new Registry;  // never destroyed: segments may outlive static destruction
  return *instance;
}

}  // namespace

std::string_view bare_segment_name(std::string_view name) noexcept {
  while (!name.empty() && name.front() == '/') name.remove_prefix(1);
  return name;
}

std::uint64_t register_segment(std::string_view name, int fd, std::byte* base, std::size_t size,
                               bool writable) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  const std::uint64_t key = r.next_key++;
  r.by_key.emplace(key, Entry{std::string(bare_segment_name(name)), fd, SegmentInfo{key, base, size, writable}});
  return key;
}

void unregister_segment(std::uint64_t key) noexcept {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.by_key.erase(key);
}

std::optional<SegmentInfo> find_segment(std::string_view name) {
  const auto bare = bare_segment_name(name);
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  std::optional<SegmentInfo> found;
  for (const auto& [key, entry] : r.by_key) {
    if (entry.name != bare) continue;
    if (!found || (!found->writable && entry.info.writable)) found = entry.info;
  }
  return found;
}

UniqueFd dup_segment_fd(std::uint64_t key) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.by_key.find(key);
  if (it == r.by_key.end()) return {};
  return dup_fd(it->second.fd);
}

std::unique_lock<std::mutex> lock_segment_registry() { return std::unique_lock(registry().mutex); }

bool segment_alive(std::uint64_t key) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  return r.by_key.count(key) != 0;
}

}  // namespace mpaio::detail
