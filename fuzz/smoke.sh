#!/usr/bin/env bash
# Short fuzz run of every target from its seeds, plus a replay of saved regressions.
# Usage (from anywhere): fuzz/smoke.sh [TARGET...]   FUZZ_SECONDS=20 by default.
# Exits non-zero if any target crashes; crash inputs land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(bundle_text v2_decode caveat_decode verify conditions ticket_decode discharge_body)
fi
secs=${FUZZ_SECONDS:-20}
# In CI (CI set, as .ci/run sets it) libFuzzer starts from a fixed seed, so runs of
# the same build mutate alike; how far 20 s gets still depends on the machine, but a
# crash it finds is a real bug, saved under fuzz/artifacts/.
seed=()
if [ -n "${CI:-}" ] && [ "${CI}" != "false" ]; then
  seed=(-seed="${FUZZ_SEED:-1}")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo fuzz build --sanitizer=none

failed=()
for t in "${targets[@]}"; do
  regs=(fuzz/regressions/"$t"/*)
  if [ -e "${regs[0]}" ]; then
    echo "== $t: replaying ${#regs[@]} regression input(s)"
    cargo fuzz run --sanitizer=none "$t" "${regs[@]}" -- -runs=1 || failed+=("$t (regression)")
  fi
  echo "== $t: fuzzing ${secs}s"
  mkdir -p "$work/$t"
  cp -r fuzz/seeds/"$t"/. "$work/$t"/ 2>/dev/null || true
  cargo fuzz run --sanitizer=none "$t" "$work/$t" -- ${seed[@]+"${seed[@]}"} \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 || failed+=("$t")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all targets passed"
