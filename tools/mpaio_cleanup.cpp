// mpaio-cleanup: removes named mpaio segments left in /dev/shm by processes that no longer exist.
#include <iostream>

#include <mpaio/shared_memory.hpp>

int main(int argc, char** argv) {
  if (argc > 1) {
    std::cerr << "usage: " << argv[0] << "\n"
              << "Removes /dev/shm/mpaio-<pid>-* segments whose creating process is gone.\n";
    return 2;
  }
  try {
    const auto removed = mpaio::remove_stale_segments();
    for (const auto& name : removed) std::cout << "removed " << name << '\n';
    std::cout << removed.size() << " stale segment(s) removed\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mpaio-cleanup: " << e.what() << '\n';
    return 1;
  }
}
