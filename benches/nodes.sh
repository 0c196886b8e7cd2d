#!/usr/bin/env bash
# Figures for many nodes (benches/nodes.rs) against a throwaway PostgreSQL with fsync on
# (durable commits, as in production). Prints the table docs/SCALING.md quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
MACVAULT_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/macvault-pg.XXXXXX")
export MACVAULT_PG_DIR MACVAULT_PG_DURABLE=1
trap 'scripts/pg.sh stop' EXIT
scripts/pg.sh start
MACVAULT_BENCH_DATABASE_URL=$(scripts/pg.sh url)
export MACVAULT_BENCH_DATABASE_URL
cargo bench --locked --bench nodes
