#include "process/crash_report.hpp"

#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include <elfutils/libdwfl.h>
#include <fmt/format.h>

#include <memory>
#include <string_view>

#include "mpaio/detail/chunk_call.hpp"

namespace mpaio::detail {

namespace {

int g_crash_fd = -1;
// The handler runs on its own stack, so that a stack overflow is reported too.
alignas(16) char g_signal_stack[64 * 1024];

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

void on_fatal_signal(int sig, siginfo_t*, void*) {
  const int saved = errno;
  void* frames[66];
  const int n = ::backtrace(frames, 66);
  CrashFrames report;
  report.signal = sig;
  // Frame 0 is this handler, frame 1 the kernel's signal trampoline; the rest is where the signal struck.
  for (int i = 2; i < n && report.count < std::size(report.address); ++i) {
    report.address[report.count++] = reinterpret_cast<std::uintptr_t>(frames[i]);
  }
  (void)!::write(g_crash_fd, &report, sizeof report);  // below PIPE_BUF: one atomic write
  errno = saved;
  // SA_RESETHAND restored the default action: the signal, raised again, kills the process with its status.
  ::raise(sig);
}

}  // namespace

void load_unwinder() noexcept {
  void* warm[1];
  (void)::backtrace(warm, 1);
}

void install_crash_reporter(int fd) noexcept {
  g_crash_fd = fd;
  load_unwinder();  // at once when the fork server loaded it already
  stack_t stack{};
  stack.ss_sp = g_signal_stack;
  stack.ss_size = sizeof g_signal_stack;
  ::sigaltstack(&stack, nullptr);
  struct sigaction action {};
  action.sa_sigaction = on_fatal_signal;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int sig : kFatalSignals) ::sigaction(sig, &action, nullptr);
}

CrashFrames read_crash_frames(int fd) noexcept {
  CrashFrames frames;
  const ssize_t n = ::read(fd, &frames, sizeof frames);
  if (n != static_cast<ssize_t>(sizeof frames) || frames.count > std::size(frames.address)) return CrashFrames{};
  return frames;
}

namespace {

/// Whether `path` is a library of the system, whose lines are not looked up: its debug information, when
/// installed, is large to read, and the user's code is what the lines are for.
bool system_library(std::string_view path) {
  return path.starts_with("/usr/lib") || path.starts_with("/lib") || path.starts_with("/usr/local/lib");
}

/// A Dwfl of the modules this process maps, or null.
Dwfl* open_own_modules() {
  static char* debuginfo_path = nullptr;
  static Dwfl_Callbacks callbacks{};
  callbacks.find_elf = dwfl_linux_proc_find_elf;
  callbacks.find_debuginfo = dwfl_build_id_find_debuginfo;
  callbacks.debuginfo_path = &debuginfo_path;
  Dwfl* d = dwfl_begin(&callbacks);
  if (d == nullptr) return d;
  dwfl_report_begin(d);
  const int failed = dwfl_linux_proc_report(d, ::getpid());
  dwfl_report_end(d, nullptr, nullptr);
  if (failed != 0) {
    dwfl_end(d);
    return nullptr;
  }
  return d;
}

}  // namespace

std::string describe_frames(const CrashFrames& frames, std::string_view stop_at) {
  // The modules of this process, which maps the crashed child's code at the same addresses (it is the fork
  // server, whose mappings do not change). Read once and kept: looking lines up reads the debug information,
  // which is costly to read for each crash. The files it opens stay open with it. Separate debug information
  // is looked up by build id on this machine only: the standard lookup would also start a debuginfod client
  // (sockets, and a network wait when DEBUGINFOD_URLS is set) inside the fork server.
  // A process forked from the one that built it (a nested pool's fork server) builds its own: the modules
  // may differ and the inherited descriptors are not open any more; the old one is left as it is.
  static pid_t built_by = 0;
  static Dwfl* dwfl = nullptr;
  if (built_by != ::getpid()) {
    built_by = ::getpid();
    dwfl = open_own_modules();
  }
  std::string text;
  for (std::uint32_t i = 0; i < frames.count; ++i) {
    // A return address points after its call: look one byte back for every frame but the faulting one.
    const Dwarf_Addr pc = frames.address[i] - (i == 0 ? 0 : 1);
    Dwfl_Module* module = dwfl != nullptr ? dwfl_addrmodule(dwfl, pc) : nullptr;
    const char* symbol = module != nullptr ? dwfl_module_addrname(module, pc) : nullptr;
    const char* file = module != nullptr ? dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr) : nullptr;
    const std::string function = symbol != nullptr ? demangle(symbol) : fmt::format("{:#x}", frames.address[i]);
    if (!stop_at.empty() && std::string_view(function).starts_with(stop_at)) break;
    fmt::format_to(std::back_inserter(text), "\n  #{} {}", i, function);
    int line = 0;
    const char* source = nullptr;
    if (module != nullptr && file != nullptr && !system_library(file)) {
      if (Dwfl_Line* where = dwfl_module_getsrc(module, pc)) source = dwfl_lineinfo(where, nullptr, &line, nullptr, nullptr, nullptr);
    }
    if (source != nullptr) {
      fmt::format_to(std::back_inserter(text), " at {}:{}", source, line);
    } else if (file != nullptr) {
      fmt::format_to(std::back_inserter(text), " in {}", file);
    }
  }
  return text;
}

}  // namespace mpaio::detail
