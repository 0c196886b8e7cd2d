#!/usr/bin/env bash
# The README's secrets walk-through, run as written against a fresh server: needs
# `macvault` on PATH.
set -euo pipefail
export MACVAULT_URL=${MACVAULT_URL:-http://127.0.0.1:7070}
data=$(mktemp -d)
expect_no() { if "$@"; then echo "expected a refusal" >&2; exit 1; fi; }
umask 077
macvault serve --listen "${MACVAULT_URL#http://}" --data-dir "$data" > "$data/serve.log" &
trap 'kill $! 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$data/serve.log" && break; sleep 0.1; done
macvault orgs create acme --token-file "$data/operator.token" > admin.token
export MACVAULT_TOKEN_FILE=admin.token
macvault apps create web && macvault apps create api

# The org's secrets are shared by its apps; an app's own secret overrides them.
macvault secrets set LOG_LEVEL=info DB_URL=postgres://shared-db/acme
printf 'postgres://web-db/acme' | macvault secrets set --app web DB_URL=- --description "web's own"
macvault secrets list --app web --resolved
# Every set is a new version; check-and-set refuses a write based on a stale read.
macvault secrets set --app web DB_URL=postgres://web-db-2/acme --if-version 1
expect_no macvault secrets set --app web DB_URL=postgres://stale/acme --if-version 1
macvault secrets rollback --app web DB_URL 1
macvault secrets history --app web DB_URL
# A value pasted by mistake: purge its stored ciphertext (the history keeps the record).
macvault secrets set --app web API_KEY=my-laptop-password
macvault secrets destroy --app web API_KEY --all
# Unsetting web's override lets the org's value show through again.
macvault secrets unset --app web DB_URL
macvault secrets list --app web --resolved
# A deploy token writes its app's secrets only; attenuated with --secret, only those names.
macvault tokens create deploy --app web --name ci > ci.token
macvault tokens attenuate --token-file ci.token --secret 'DB_*' > ci-db.token
macvault secrets set --app web DB_URL=postgres://web-db-3/acme --token-file ci-db.token
macvault secrets list --app web --resolved --token-file ci-db.token
expect_no macvault secrets set --app web API_KEY=x --token-file ci-db.token
expect_no macvault secrets set --app api LOG_LEVEL=debug --token-file ci.token
# Delivering them: a runtime token reveals web's values; `run` puts them in a command's
# environment (never PATH, LD_*, NODE_OPTIONS… unless --allow NAME) and becomes it.
macvault tokens create runtime --app web --name boot > boot.token
macvault run --app web --token-file boot.token -- sh -c 'echo "web connects to $DB_URL"'
# .env files in (one atomic write; --dry-run first) and out (needs reveal).
printf 'export FEATURE_FLAGS="beta,dark-mode"\nSENTRY_DSN=https://key@sentry.example/1 # errors\n' > web.env
macvault secrets import --app web web.env --dry-run
macvault secrets import --app web web.env
macvault secrets export --app web --token-file boot.token > exported.env
grep -q "^FEATURE_FLAGS='beta,dark-mode'\$" exported.env
# Rotate the org's secrets key: new values use the new key at once; older data keys
# are re-wrapped in the background, then the old key is deleted.
macvault secrets rotate-key --wait
