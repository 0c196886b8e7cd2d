#!/usr/bin/env bash
# The README's third-party walk-through, run as written against a fresh server: needs
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
macvault apps create web

# Register GitHub Actions as a third party of the org (the JWKS: a file, or its URL).
echo '{"keys":[{"kty":"RSA","kid":"gh1","alg":"RS256","n":"sXch","e":"AQAB"}]}' > gha-jwks.json
macvault third-parties add gha --location "$MACVAULT_URL/3p/acme-gha" \
  --issuer https://token.actions.githubusercontent.com --audience macvault --jwks gha-jwks.json
# A CI token that works only with a discharge for a job of one repository (by its numeric
# id, which no one can register again) on main.
macvault tokens create deploy --app web --name ci --require-ci gha \
  --condition 'claim repository_id = 892374561' \
  --condition 'claim ref = refs/heads/main' --condition 'max-validity = 10m' > ci.token
macvault tokens inspect --token-file ci.token
# Alone it is refused, naming where its discharge comes from.
expect_no macvault tokens verify --token-file ci.token
# Anyone can add such a caveat offline with the public key the location publishes.
macvault tokens create deploy --app web --name staging > staging.token
macvault tokens attenuate --token-file staging.token --third-party "$MACVAULT_URL/3p/acme-gha" \
  --condition 'claim environment = staging' > staging-ci.token
# Rotating its key keeps older keys opening their tickets until they are retired.
macvault third-parties rotate-key gha > /dev/null
macvault third-parties show gha
