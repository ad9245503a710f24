#!/usr/bin/env bash
# Model-checks the rings' wake-up protocol (wakeup.pml) with spin: without the fences a wake-up can be lost
# (spin must find the invalid end state), with them none is (spin must find no error).
set -euo pipefail
model="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/wakeup.pml"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
errors() {
  spin -a "$@" "$model" >/dev/null
  cc -O1 -o pan pan.c
  ./pan | sed -n 's/.*errors: \([0-9]*\).*/\1/p'
}
without=$(errors)
with=$(errors -DFENCE)
echo "wake-up protocol: ${without} error(s) without the fences, ${with} with them"
[[ "$without" -ge 1 && "$with" == 0 ]]
