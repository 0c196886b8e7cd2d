#!/usr/bin/env bash
# Mutation testing of the caveats crate's evaluation code: every mutant cargo-mutants
# makes of these files must be caught by the crate's own tests (exit 2 when one is
# missed). A missed mutant is a rule no test pins down.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi
out=${MUTANTS_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/macvault-mutants.XXXXXX")}
cargo mutants --package macvault-caveats --output "$out" \
    --file caveats/src/caveat.rs --file caveats/src/eval.rs --file caveats/src/implies.rs \
    --file caveats/src/net.rs --file caveats/src/access.rs "$@"
