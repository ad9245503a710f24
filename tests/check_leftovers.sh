#!/usr/bin/env bash
# snapshot FILE: records the /dev/shm/mpaio-* entries present now.
# check FILE:    fails if an entry not in FILE exists, or an mpaio worker / fork-server process is alive.
set -euo pipefail
mode=$1 file=$2
list() { (cd /dev/shm && ls -1 2>/dev/null | grep '^mpaio-' || true) | sort; }
case "$mode" in
  snapshot) list >"$file" ;;
  check)
    sleep 0.2  # let processes being reaped by the last test finish exiting
    new=$(comm -13 "$file" <(list))
    procs=$(ps -eo pid=,comm= | awk '$2 ~ /^mpaio-/' || true)
    status=0
    if [[ -n "$new" ]]; then echo "left behind in /dev/shm:"; echo "$new"; status=1; fi
    if [[ -n "$procs" ]]; then echo "mpaio processes still alive:"; echo "$procs"; status=1; fi
    [[ $status == 0 ]] && echo "no segment and no process left behind"
    exit $status ;;
  *) echo "usage: $0 snapshot|check FILE" >&2; exit 2 ;;
esac
