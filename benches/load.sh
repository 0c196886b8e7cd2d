#!/usr/bin/env bash
# Load benchmark for `POST /v1/verify`, against nginx answering `return 200` as the floor.
#
#   benches/load.sh                     # 3 rounds of DURATION=15s by default
#   DURATION=30s ROUNDS=5 benches/load.sh
#
# What it does, all on 127.0.0.1 only:
#   1. installs wrk, nginx-light and curl with apt-get if they are missing;
#   2. `cargo build --release`;
#   3. starts a fresh `macvault serve` on a free port (port 0) with a temp data dir;
#      creates org `acme`, mints a deploy token for app `web` and attenuates it with
#      `actions = r` and `secret = DB_*` (5 caveats); checks once with curl that
#      verifying it for a read of secret DB_URL answers 200 and "allowed":true;
#   4. starts nginx with its own config in the temp dir (worker_processes 2,
#      access_log off, `return 200 "ok\n"`);
#   5. ROUNDS times (3): `wrk -t2 -c64 -d$DURATION --latency` POSTing that body to
#      macvault's /v1/verify, then the same load (same POST body) against nginx, each
#      after a short warm-up; macvault's VmRSS is sampled during its runs and VmHWM
#      read at the end. Alternating rounds let drift on the shared cores hit both alike;
#   6. prints each round (req/s, p99, CPU of server / wrk / other), the medians, their
#      macvault/nginx ratios, the server's peak RSS, and PASS/FAIL against the targets:
#        macvault req/s >= 0.5 x nginx req/s
#        macvault p99   <= 2   x nginx p99
#        macvault VmHWM <  64 MiB
#
# Exit status: 0 PASS, 1 FAIL, 2 the benchmark itself could not run.
# Every process it starts is stopped on exit (trap, by pid). apt-get and the build are
# bounded by `timeout`; after the build, a watchdog bounds the whole run to BUDGET
# seconds (2 x ROUNDS x (WARMUP + DURATION + 5) + 120) and then stops everything.
#
# Knobs (environment): DURATION (15s), ROUNDS (3), WARMUP (3s; 0 to skip), THREADS (2),
# CONNECTIONS (64), BUILD_TIMEOUT (1800 s), BUDGET (seconds), KEEP_TMP=1 keeps the temp
# dir, SKIP_BUILD=1 skips the build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$ROOT/benches/load"

DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] error: %s\n' "$*" >&2; exit 2; }

# "15s" / "2m" / "1h" / "15" -> seconds
to_secs() {
    local v=$1
    [[ $v =~ ^([0-9]+)([smh]?)$ ]] || die "bad duration '$v' (want e.g. 15s, 2m)"
    local n=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in
        m) n=$((n * 60)) ;;
        h) n=$((n * 3600)) ;;
    esac
    echo "$n"
}
DUR_S=$(to_secs "$DURATION")
WARM_S=$(to_secs "$WARMUP")
((DUR_S > 0)) || die "DURATION must be positive"
[[ $THREADS =~ ^[1-9][0-9]*$ && $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "bad THREADS/CONNECTIONS"
# 2 x ROUNDS loaded runs (warm-up + measured) plus generous room for setup and teardown.
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "bad ROUNDS (1 to 99)"
BUDGET=${BUDGET:-$((2 * ROUNDS * (WARM_S + DUR_S + 5) + 120))}
[[ $BUDGET =~ ^[1-9][0-9]*$ ]] || die "bad BUDGET"

# ---------------------------------------------------------------- deps, build
# (--foreground everywhere: keeps every process in the caller's process group, so
# Ctrl-C reaches it.)
{
    as_root() {
        if ((EUID == 0)); then "$@"
        elif command -v sudo >/dev/null; then sudo -n "$@"
        else die "need root (or sudo) to run: $*"
        fi
    }
    have_nginx() { command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; }
    missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    have_nginx || missing+=(nginx-light)
    if ((${#missing[@]})); then
        command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get"
        log "installing ${missing[*]} with apt-get"
        # Installing nginx would otherwise start the system nginx service (port 80);
        # a policy-rc.d that says no keeps the machine as it was. Only if none exists.
        made_policy=
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
            made_policy=1
        fi
        rc=0
        as_root timeout --foreground 600 apt-get update -qq || rc=$?
        if ((rc == 0)); then
            as_root env DEBIAN_FRONTEND=noninteractive timeout --foreground 900 \
                apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
            if ((rc != 0)) && ! have_nginx; then  # older releases: plain `nginx`
                missing=("${missing[@]/nginx-light/nginx}")
                rc=0
                as_root env DEBIAN_FRONTEND=noninteractive timeout --foreground 900 \
                    apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
            fi
        fi
        [[ -n $made_policy ]] && as_root rm -f /usr/sbin/policy-rc.d
        ((rc == 0)) || die "apt-get install ${missing[*]} failed"
    fi
    command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"
    if [[ -z ${SKIP_BUILD:-} ]]; then
        log "cargo build --release"
        (cd "$ROOT" && timeout --foreground "$BUILD_TIMEOUT" cargo build --release --quiet) \
            || die "cargo build --release failed (or took over ${BUILD_TIMEOUT}s)"
    fi
    [[ -x $ROOT/target/release/macvault ]] || die "no target/release/macvault"
}

# ---------------------------------------------------------------- the benchmark
BIN="$ROOT/target/release/macvault"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HOST=127.0.0.1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/macvault-load.XXXXXX")
MV_PID= NGX_PID= NGX_WORKERS= SAMPLER_PID= WRK_PID= WATCHDOG_PID=

stop_pid() { # pid signal: signal, wait up to 5 s, then SIGKILL
    local pid=$1 sig=$2 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_nginx() { # the master stops its workers on TERM; if it had to be killed, kill them
    local w
    [[ -n $NGX_PID ]] || return 0
    stop_pid "$NGX_PID" TERM
    for w in $NGX_WORKERS; do kill -KILL "$w" 2>/dev/null || true; done
    NGX_PID= NGX_WORKERS=
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$WATCHDOG_PID" TERM
    stop_pid "$WRK_PID" TERM
    stop_pid "$SAMPLER_PID" TERM
    stop_nginx
    stop_pid "$MV_PID" TERM
    if [[ -n ${KEEP_TMP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# The whole run is bounded: past BUDGET seconds the watchdog sends this shell TERM.
# Long steps run in the background under `wait`, which a signal interrupts at once;
# the trap then stops every process started here (each is tracked by pid).
(
    sleep "$BUDGET" &
    s=$!
    trap 'kill $s 2>/dev/null; exit 0' TERM
    wait "$s"
    log "time budget of ${BUDGET}s exceeded; stopping"
    kill -TERM $$ 2>/dev/null
) &
WATCHDOG_PID=$!
log "time budget ${BUDGET}s; temp dir $TMP"

CURL=(curl -sS --max-time 10 --noproxy '*')
json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

# ---- macvault
log "starting macvault (data dir $TMP/data)"
: >"$TMP/macvault.out" # exists before the poll below reads it
"$BIN" serve --listen "$HOST:0" --data-dir "$TMP/data" >>"$TMP/macvault.out" 2>"$TMP/macvault.err" &
MV_PID=$!
MV_URL=
for ((i = 0; i < 200; i++)); do
    MV_URL=$(sed -n 's/^macvault listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$TMP/macvault.out")
    [[ -n $MV_URL ]] && break
    kill -0 "$MV_PID" 2>/dev/null || { cat "$TMP/macvault.err" >&2; die "macvault exited"; }
    sleep 0.1
done
[[ -n $MV_URL ]] || die "macvault did not start listening"
OPERATOR=$(awk '/^operator token/ { getline; print; exit }' "$TMP/macvault.out")
[[ $OPERATOR == mvt_* ]] || OPERATOR=$(tr -d '[:space:]' <"$TMP/data/operator.token" 2>/dev/null || true)
[[ $OPERATOR == mvt_* ]] || die "no operator token in macvault's output"
log "macvault at $MV_URL (pid $MV_PID)"

ORG_TOKEN=$("${CURL[@]}" -X POST "$MV_URL/v1/orgs" -H "Authorization: Bearer $OPERATOR" \
    -H 'content-type: application/json' -d '{"name":"acme"}' | json_field token)
[[ $ORG_TOKEN == mvt_* ]] || die "creating org acme failed"
"${CURL[@]}" -X POST "$MV_URL/v1/orgs/acme/apps" -H "Authorization: Bearer $ORG_TOKEN" \
    -H 'content-type: application/json' -d '{"name":"web"}' >/dev/null || die "creating app web failed"
DEPLOY=$("${CURL[@]}" -X POST "$MV_URL/v1/orgs/acme/tokens" -H "Authorization: Bearer $ORG_TOKEN" \
    -H 'content-type: application/json' -d '{"kind":"deploy","app":"web"}' | json_field token)
[[ $DEPLOY == mvt_* ]] || die "minting the deploy token failed"

# Attenuate offline: the CLI if it has the command, else append the two first-party
# caveats by hand (libmacaroons v2: before the final EOS + signature field insert
# `02 <len> P 00`; new signature = HMAC-SHA256(key = old signature, P)).
TOKEN=$("$BIN" tokens attenuate --token "$DEPLOY" --read-only --secret 'DB_*' 2>/dev/null \
    | grep -o 'mvt_[A-Za-z0-9_-]*' | head -n1 || true)
if [[ $TOKEN != mvt_* ]]; then
    log "CLI attenuate unavailable; appending caveats with python3"
    command -v python3 >/dev/null || die "need python3 to attenuate without the CLI"
    TOKEN=$(python3 - "$DEPLOY" <<'PY'
import base64, hashlib, hmac, sys
text = sys.argv[1]
assert text.startswith("mvt_")
b64 = text[4:]
raw = bytearray(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))
for pred in (b"actions = r", b"secret = DB_*"):
    assert raw[-35:-32] == b"\x00\x06\x20" and len(pred) < 128, "unexpected token layout"
    sig = bytes(raw[-32:])
    raw[-35:-35] = b"\x02" + bytes([len(pred)]) + pred + b"\x00"
    raw[-32:] = hmac.new(sig, pred, hashlib.sha256).digest()
print("mvt_" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="))
PY
    )
fi
[[ $TOKEN == mvt_* ]] || die "attenuating the token failed"

BODY="$TMP/body.json"
printf '{"token": "%s", "access": {"org":"acme","app":"web","resource":"secrets","action":"read","secret":"DB_URL"}}' \
    "$TOKEN" >"$BODY"
CHECK=$("${CURL[@]}" -o "$TMP/check.json" -w '%{http_code}' -X POST "$MV_URL/v1/verify" \
    -H 'content-type: application/json' --data-binary "@$BODY")
ANSWER=$(cat "$TMP/check.json")
[[ $CHECK == 200 && $ANSWER == *'"allowed":true'* ]] \
    || die "verify check: HTTP $CHECK, answer $ANSWER"
NCAV=$(printf '%s' "$ANSWER" | sed -n 's/.*"caveats":\[\([^]]*\)\].*/\1/p' | grep -o '","' | wc -l)
NCAV=$((NCAV + 1))
((NCAV == 5)) || die "expected a 5-caveat token, the server sees $NCAV: $ANSWER"
log "check OK: 200, allowed, 5 caveats, token of ${#TOKEN} chars, body of $(wc -c <"$BODY") bytes"

# ---- measuring helpers
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { # utime+stime of one pid, in clock ticks
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    awk '{ print $12 + $13 }' <<<"$s"
}
children_of() { # pids whose parent is $1
    local f
    for f in /proc/[0-9]*/stat; do
        awk -v p="$1" '{ sub(/.*\) /, ""); if ($2 == p) { split(FILENAME, a, "/"); print a[3] } }' "$f" 2>/dev/null
    done
}
tree_ticks() { # a pid and its children
    local t p
    t=$(proc_ticks "$1")
    for p in $(children_of "$1"); do t=$((t + $(proc_ticks "$p"))); done
    echo "$t"
}
# user+sys seconds of this shell's finished children (wrk, through timeout). `times`
# must run in this shell, not a $(...) subshell, so it writes to a file.
children_secs() {
    awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }; print t }' "$1"
}
machine_ticks() { # "busy total" across all cpus
    awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6; print busy, total; exit }' /proc/stat
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

run_wrk() { # name url server-pid -> $TMP/name.wrk; sets CPU_SERVER CPU_WRK CPU_OTHER (cores busy)
    local name=$1 url=$2 pid=$3 t0 t1 m0 m1 w0 w1
    if ((WARM_S > 0)); then
        MV_BODY="$BODY" timeout --foreground -k 5 $((WARM_S + 30)) \
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARM_S}s" -s "$HERE/verify.lua" "$url" >/dev/null &
        WRK_PID=$!
        wait "$WRK_PID" || die "wrk warm-up against $name failed"
        WRK_PID=
    fi
    t0=$(tree_ticks "$pid"); read -r m0 w0 < <(machine_ticks); times >"$TMP/times0"
    log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $url  ($name)"
    MV_BODY="$BODY" timeout --foreground -k 5 $((DUR_S + 30)) \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$HERE/verify.lua" "$url" \
        >"$TMP/$name.wrk" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { cat "$TMP/$name.wrk" >&2; die "wrk against $name failed"; }
    WRK_PID=
    t1=$(tree_ticks "$pid"); read -r m1 w1 < <(machine_ticks); times >"$TMP/times1"
    CPU_SERVER=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$DUR_S" 'BEGIN { printf "%.2f", d / hz / s }')
    CPU_MACHINE=$(awk -v b=$((m1 - m0)) -v t=$((w1 - w0)) -v n="$(nproc)" \
        'BEGIN { printf "%.2f", (t > 0 ? b / t : 0) * n }')
    CPU_WRK=$(awk -v a="$(children_secs "$TMP/times0")" -v b="$(children_secs "$TMP/times1")" -v s="$DUR_S" 'BEGIN { printf "%.2f", (b - a) / s }')
    CPU_OTHER=$(awk -v m="$CPU_MACHINE" -v x="$CPU_SERVER" -v w="$CPU_WRK" \
        'BEGIN { o = m - x - w; printf "%.2f", (o < 0 ? 0 : o) }')
    grep -q '^LOAD_RESULT' "$TMP/$name.wrk" || { cat "$TMP/$name.wrk" >&2; die "no result from wrk ($name)"; }
}
res() { sed -n "s/^LOAD_RESULT.* $2=\([^ ]*\).*/\1/p" "$TMP/$1.wrk"; }

# ---- nginx, started now and kept up beside macvault (both idle when not measured)
NGX_DIR="$TMP/nginx"
mkdir -p "$NGX_DIR"
USER_LINE=
if ((EUID == 0)); then # the workers drop to nobody; nothing of theirs is on disk
    grp=nogroup; getent group nogroup >/dev/null || grp=nobody
    USER_LINE="user nobody $grp;"
fi
NGX_URL=
for ((try = 0; try < 10; try++)); do
    port=$((20000 + RANDOM % 40000))
    # Something answers there already: take another.
    (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null && continue
    sed -e "s|@PREFIX@|$NGX_DIR|g" -e "s|@PORT@|$port|g" -e "s|@USER_LINE@|$USER_LINE|" \
        "$HERE/nginx.conf.in" >"$NGX_DIR/nginx.conf"
    "$NGINX" -p "$NGX_DIR" -e "$NGX_DIR/error.log" -c "$NGX_DIR/nginx.conf" 2>>"$NGX_DIR/error.log" &
    NGX_PID=$!
    for ((i = 0; i < 50; i++)); do
        kill -0 "$NGX_PID" 2>/dev/null || break
        if [[ $("${CURL[@]}" -o /dev/null -w '%{http_code}' "http://$HOST:$port/" 2>/dev/null) == 200 ]]; then
            NGX_URL="http://$HOST:$port"
            break 2
        fi
        sleep 0.1
    done
    stop_nginx
done
[[ -n $NGX_URL ]] || { cat "$NGX_DIR/error.log" >&2; die "nginx did not start"; }
NGX_WORKERS=$(children_of "$NGX_PID")
log "nginx at $NGX_URL (pid $NGX_PID, workers $(echo $NGX_WORKERS))"

# ---- the rounds: macvault then nginx, ROUNDS times, so drift hits both alike
MV_RPS_ALL=() NG_RPS_ALL=() MV_P99_ALL=() NG_P99_ALL=() ROWS=()
for ((round = 1; round <= ROUNDS; round++)); do
    # macvault, its RSS sampled every 0.2 s
    (
        while kill -0 "$MV_PID" 2>/dev/null; do
            status_kib "$MV_PID" VmRSS
            sleep 0.2
        done
    ) >>"$TMP/rss.samples" 2>/dev/null &
    SAMPLER_PID=$!
    run_wrk "macvault.$round" "$MV_URL/v1/verify" "$MV_PID"
    MV_CPU="$CPU_SERVER / $CPU_WRK / $CPU_OTHER"
    stop_pid "$SAMPLER_PID" TERM; SAMPLER_PID=
    kill -0 "$MV_PID" 2>/dev/null || die "macvault died under load"
    run_wrk "nginx.$round" "$NGX_URL/v1/verify" "$NGX_PID"
    NG_CPU="$CPU_SERVER / $CPU_WRK / $CPU_OTHER"
    MV_RPS_ALL+=("$(res "macvault.$round" rps)") NG_RPS_ALL+=("$(res "nginx.$round" rps)")
    MV_P99_ALL+=("$(res "macvault.$round" p99_us)") NG_P99_ALL+=("$(res "nginx.$round" p99_us)")
    ROWS+=("$round|$(res "macvault.$round" rps)|$(res "macvault.$round" p99_us)|$MV_CPU|$(res "nginx.$round" rps)|$(res "nginx.$round" p99_us)|$NG_CPU")
    log "round $round: macvault $(res "macvault.$round" rps) req/s, nginx $(res "nginx.$round" rps) req/s"
done
stop_nginx
RSS_PEAK_SAMPLED=$(sort -n "$TMP/rss.samples" | tail -n1)
sleep 2 # let the 1 s flusher write the queued last-used times
RSS_AFTER=$(status_kib "$MV_PID" VmRSS)
HWM=$(status_kib "$MV_PID" VmHWM)
THREADS_MV=$(status_kib "$MV_PID" Threads)
kill -0 "$MV_PID" 2>/dev/null || die "macvault died after the load"

# ---- summary: medians over the rounds
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }
MV_RPS=$(median "${MV_RPS_ALL[@]}") NG_RPS=$(median "${NG_RPS_ALL[@]}")
MV_P99=$(median "${MV_P99_ALL[@]}") NG_P99=$(median "${NG_P99_ALL[@]}")
MV_ERR=0
for ((round = 1; round <= ROUNDS; round++)); do
    for k in status_errors connect_errors read_errors write_errors timeouts; do
        MV_ERR=$((MV_ERR + $(res "macvault.$round" "$k")))
    done
done
RPS_RATIO=$(awk -v a="$MV_RPS" -v b="$NG_RPS" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
P99_RATIO=$(awk -v a="$MV_P99" -v b="$NG_P99" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 999) }')
HWM_MIB=$(awk -v k="$HWM" 'BEGIN { printf "%.1f", k / 1024 }')

verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }
V_RPS=$(verdict "$RPS_RATIO >= 0.5")
V_P99=$(verdict "$P99_RATIO <= 2")
V_RSS=$(verdict "$HWM < 65536")
V_ERR=$(verdict "$MV_ERR == 0")

echo
echo "== POST /v1/verify load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (each after ${WARMUP} warm-up), $ROUNDS rounds, $(nproc) cores"
printf '%-6s %12s %9s %20s   %12s %9s %20s\n' round "macvault r/s" "p99 ms" "cpu srv/wrk/other" "nginx r/s" "p99 ms" "cpu srv/wrk/other"
for row in "${ROWS[@]}"; do
    IFS='|' read -r r a b c d e f <<<"$row"
    printf '%-6s %12.1f %9s %20s   %12.1f %9s %20s\n' "$r" "$a" "$(ms "$b")" "$c" "$d" "$(ms "$e")" "$f"
done
printf '%-6s %12.1f %9s %20s   %12.1f %9s\n' median "$MV_RPS" "$(ms "$MV_P99")" "" "$NG_RPS" "$(ms "$NG_P99")"
echo
echo "req/s ratio macvault/nginx: $RPS_RATIO   (medians; target >= 0.5)  $V_RPS"
echo "p99 ratio   macvault/nginx: $P99_RATIO   (medians; target <= 2)    $V_P99"
echo "macvault peak RSS (VmHWM):  $HWM_MIB MiB (target < 64)  $V_RSS"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo "  (VmRSS peak sampled during load $(mib "$RSS_PEAK_SAMPLED") MiB, 2 s after load $(mib "$RSS_AFTER") MiB; $THREADS_MV threads)"
echo "macvault failed requests:   $MV_ERR (non-2xx + socket errors, all rounds)  $V_ERR"
if [[ $V_RPS$V_P99$V_RSS$V_ERR == PASSPASSPASSPASS ]]; then
    echo "RESULT: PASS"
    exit 0
fi
echo "RESULT: FAIL"
exit 1
