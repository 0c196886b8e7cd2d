#!/usr/bin/env bash
# Regenerates docs/screenshots/ (shown in the README): runs the dashboard's browser
# tests, which save each main page (at 1280 and 390 pixels wide) under target/browser/
# and, with MACVAULT_SCREENSHOTS set, here too. Needs chromium and chromium-driver.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/screenshots
MACVAULT_REQUIRE_BROWSER=1 MACVAULT_SCREENSHOTS=docs/screenshots \
    cargo test --locked --test tests browser:: -- --test-threads 1
ls docs/screenshots
