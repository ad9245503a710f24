#include "mpaio/detail/worker_registry.hpp"

#include <mutex>
#include <unordered_map>

namespace mpaio::detail {

namespace {

struct Registry {
  std::mutex mutex;
  std::unordered_map<WorkerTypeId, WorkerType> by_id;
};

Registry& registry() {
  static auto* instance = new Registry;  // never destroyed: worker processes leave with _exit
  return *instance;
}

/// FNV-1a, 64 bits: the same for the same bytes in every execution.
WorkerTypeId hash(std::string_view text, std::uint64_t occurrence) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ULL;
  };
  for (char c : text) mix(static_cast<unsigned char>(c));
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(occurrence >> (8 * i)));
  return h == 0 ? 1 : h;
}

}  // namespace

WorkerTypeId register_worker_type(const char* mangled_name, ChunkFn run, DiscardFn discard) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  // Two types may share a mangled name (types of one name in anonymous namespaces of two files): the second
  // gets the next occurrence, in the order of static initialisation, which one build always repeats.
  for (std::uint64_t occurrence = 0;; ++occurrence) {
    const WorkerTypeId id = hash(mangled_name, occurrence);
    auto [it, added] = r.by_id.try_emplace(id);
    if (added) {
      it->second = WorkerType{id, demangle(mangled_name), run, discard};
      return id;
    }
    if (it->second.run == run) return id;
  }
}

std::unique_lock<std::mutex> lock_worker_registry() { return std::unique_lock(registry().mutex); }

const WorkerType* find_worker_type(WorkerTypeId id) noexcept {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.by_id.find(id);
  return it == r.by_id.end() ? nullptr : &it->second;
}

}  // namespace mpaio::detail
