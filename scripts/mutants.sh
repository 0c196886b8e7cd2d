#!/usr/bin/env bash
# Mutation testing of the caveats crate's rules (implication and exclusion, evaluation,
# validity windows, networks and prefixes, text bounds): every mutant cargo-mutants makes
# of these files must be caught by the crate's tests (exit 2 when one is missed). A
# missed mutant is a rule no test pins down.
#
# Usage: scripts/mutants.sh [--no-props] [CARGO-MUTANTS ARGS...]
#   --no-props  leave the property tests (caveats/tests/props.rs) and doctests out: only
#               the deterministic tests run (the unit tests and caveats/tests/rules.rs),
#               so every mutant must be killed by a table, never by a lucky random input.
#               CI runs this way (.ci/run); docs/TESTING.md.
# MUTANTS_OUT=DIR keeps cargo-mutants' report there (default: a fresh temporary dir).
set -euo pipefail
cd "$(dirname "$0")/.."
test_args=()
if [ "${1:-}" = "--no-props" ]; then
    shift
    test_args=(--cargo-test-arg=--lib --cargo-test-arg=--test=rules)
fi
if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi
out=${MUTANTS_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/macvault-mutants.XXXXXX")}
echo "cargo-mutants report: $out/mutants.out"
cargo mutants --package macvault-caveats --output "$out" --jobs 2 \
    --file caveats/src/caveat.rs --file caveats/src/eval.rs --file caveats/src/implies.rs \
    --file caveats/src/net.rs --file caveats/src/access.rs \
    --file caveats/src/condition.rs \
    ${test_args[@]+"${test_args[@]}"} "$@"
