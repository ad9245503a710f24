#pragma once
// What every process mpaio forks does first, in one place: its descriptors, its signals, dying with its
// parent, its CPU, its name, its crash reporter; and the names of the exit codes it may leave with.

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace mpaio::detail {

/// The exit codes of mpaio's children besides the user's own: 0 is a normal exit.
enum class ChildExit : int {
  ok = 0,
  parent_gone = 69,      ///< its parent died before it could arm PR_SET_PDEATHSIG
  protocol_error = 70,   ///< the caller sent something it could not understand
  missing_descriptor = 71,  ///< a message announced a descriptor that did not come
  setup_failed = 72,     ///< it could not map its channel, a segment, or set itself up
  fork_server_failed = 73,  ///< the fork server's own loop failed
  entry_failed = 74,     ///< the child's entry threw
  stage_init_failed = 75,  ///< a pipeline stage's constructor threw
};

/// "protocol error" for ChildExit::protocol_error...; empty for a code that is not one of mpaio's.
std::string_view child_exit_meaning(int code) noexcept;

/// How a child is set up right after fork().
struct ChildSetup {
  std::string name;             ///< process name (PR_SET_NAME: 15 characters are kept)
  std::vector<int> keep_fds;    ///< descriptors it keeps besides 0, 1 and 2
  pid_t parent = 0;             ///< die with this parent (PR_SET_PDEATHSIG); 0: don't arm it
  int cpu = -1;                 ///< pin it to this CPU; -1: don't
  int crash_fd = -1;            ///< write the frames of a fatal signal here (crash_report.hpp); -1: none
};

/// Sets up the calling process, just forked: every descriptor not kept is replaced by /dev/null (a number
/// left free could be reused by a later open while stale objects inherited from the parent still write to
/// it), default signal actions with SIGINT ignored (Ctrl-C is the caller's to handle) and nothing blocked,
/// PR_SET_PDEATHSIG = SIGKILL checked against `parent`, affinity, name, crash reporter. Leaves with
/// ChildExit::parent_gone when the parent is already gone.
void set_up_child(const ChildSetup& setup) noexcept;

}  // namespace mpaio::detail
