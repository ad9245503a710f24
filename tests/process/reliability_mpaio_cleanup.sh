#!/usr/bin/env bash
# ctest reliability.mpaio_cleanup_command: the mpaio-cleanup command removes /dev/shm/mpaio-<pid>-<hex>
# segments whose creating process is gone, and only those: not a live process's segment, not a name of
# another shape. Usage: reliability_mpaio_cleanup.sh path/to/mpaio-cleanup
set -euo pipefail
cleanup=$1

rand_hex() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }
pid_max=$(cat /proc/sys/kernel/pid_max)
dead_pid=$((pid_max + 1))   # no process can have it
sleep 300 & live_pid=$!     # a live "creator"

stale=mpaio-${dead_pid}-$(rand_hex)
live=mpaio-${live_pid}-$(rand_hex)
other=mpaio-notapid-$(rand_hex)
finish() {
  kill "$live_pid" 2>/dev/null || true
  wait "$live_pid" 2>/dev/null || true
  rm -f "/dev/shm/$stale" "/dev/shm/$live" "/dev/shm/$other"
}
trap finish EXIT
for name in "$stale" "$live" "$other"; do head -c 4096 /dev/zero >"/dev/shm/$name"; done

status=0
fail() { echo "FAIL: $*"; status=1; }

out=$("$cleanup")
echo "$out"
grep -qx "removed /$stale" <<<"$out" || fail "the stale segment is not reported as removed"
grep -q "stale segment(s) removed" <<<"$out" || fail "no summary line"
[[ ! -e /dev/shm/$stale ]] || fail "the stale segment is still there"
[[ -e /dev/shm/$live ]] || fail "the live process's segment was removed"
[[ -e /dev/shm/$other ]] || fail "a name that is not mpaio-<pid>-<hex> was removed"

# Run again: nothing of ours to remove.
out=$("$cleanup")
grep -q "removed /$stale" <<<"$out" && fail "removed twice"

# Bad usage exits with 2.
set +e
"$cleanup" --bogus >/dev/null 2>&1
rc=$?
set -e
[[ $rc == 2 ]] || fail "bad usage exited with $rc, not 2"

[[ $status == 0 ]] && echo "mpaio-cleanup removes stale segments only"
exit $status
