#!/usr/bin/env bash
# Reveal under load, side by side with /v1/verify on the same server (README
# "Performance"): an app with 50 secrets, revealed with a runtime token (every request
# decrypts 50 values and commits its audit event, group committed), against the
# verify endpoint with a 5-caveat token. ROUNDS alternating rounds of `wrk -t2 -c64`.
# Target: reveal req/s >= 0.2 x verify req/s.
#
#   benches/reveal.sh                 # 3 rounds of 10s
#   DURATION=20s ROUNDS=5 benches/reveal.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
(cd "$ROOT" && cargo build --release --quiet)
BIN=$ROOT/target/release/macvault
TMP=$(mktemp -d "${TMPDIR:-/tmp}/macvault-reveal.XXXXXX")
trap 'kill $MV 2>/dev/null || true; wait $MV 2>/dev/null || true; rm -rf "$TMP"' EXIT
umask 077
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$TMP/data" >"$TMP/out" 2>"$TMP/err" &
MV=$!
for _ in $(seq 100); do grep -q "listening on" "$TMP/out" && break; sleep 0.1; done
URL=$(sed -n 's/^macvault listening on \(http:[^ ]*\).*/\1/p' "$TMP/out")
export MACVAULT_URL=$URL
"$BIN" orgs create acme --token-file "$TMP/data/operator.token" >"$TMP/org.token"
"$BIN" apps create web --token-file "$TMP/org.token" >/dev/null
pairs=()
for i in $(seq -w 1 50); do pairs+=("SECRET_$i=value-$i-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"); done
"$BIN" secrets set --app web "${pairs[@]}" --token-file "$TMP/org.token" >/dev/null
"$BIN" tokens create runtime --app web --name bench --token-file "$TMP/org.token" >"$TMP/runtime.token"
"$BIN" tokens create deploy --app web --token-file "$TMP/org.token" >"$TMP/deploy.token"
"$BIN" tokens attenuate --token-file "$TMP/deploy.token" --read-only --secret 'DB_*' >"$TMP/verify.token"
printf '{"token": "%s", "access": {"org":"acme","app":"web","resource":"secrets","action":"read","secret":"DB_URL"}}' \
    "$(cat "$TMP/verify.token")" >"$TMP/body.json"
n=$(curl -s -X POST -H "Authorization: Bearer $(cat "$TMP/runtime.token")" "$URL/v1/orgs/acme/apps/web/secrets/reveal" | grep -o '"SECRET_' | wc -l)
[[ $n == 50 ]] || { echo "reveal check: $n secrets" >&2; exit 2; }
res() { sed -n "s/^LOAD_RESULT.* $2=\([^ ]*\).*/\1/p" "$1"; }
rev=() ver=()
for ((r = 1; r <= ROUNDS; r++)); do
    MV_TOKEN_FILE=$TMP/runtime.token wrk -t2 -c64 -d"$DURATION" --latency -s "$ROOT/benches/load/reveal.lua" \
        "$URL/v1/orgs/acme/apps/web/secrets/reveal" >"$TMP/rev.wrk"
    MV_BODY=$TMP/body.json wrk -t2 -c64 -d"$DURATION" --latency -s "$ROOT/benches/load/verify.lua" \
        "$URL/v1/verify" >"$TMP/ver.wrk"
    [[ $(res "$TMP/rev.wrk" status_errors) == 0 ]] || { cat "$TMP/rev.wrk" >&2; exit 2; }
    rev+=("$(res "$TMP/rev.wrk" rps)") ver+=("$(res "$TMP/ver.wrk" rps)")
    printf 'round %d: reveal %8.0f req/s (p99 %6d us)   verify %8.0f req/s (p99 %6d us)\n' "$r" \
        "${rev[-1]}" "$(res "$TMP/rev.wrk" p99_us)" "${ver[-1]}" "$(res "$TMP/ver.wrk" p99_us)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mr=$(median "${rev[@]}") mv=$(median "${ver[@]}")
printf 'median: reveal %.0f req/s, verify %.0f req/s, ratio %.2f (target >= 0.20)\n' "$mr" "$mv" \
    "$(awk -v a="$mr" -v b="$mv" 'BEGIN { print a / b }')"
