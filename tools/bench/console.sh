#!/bin/sh
# console.sh - the web console with a big store: how long its API takes and
# its pages take to first render, and the daemon's CPU while consoles are
# open. Prints numbers; never fails on speed.
#
#   tools/bench/console.sh [TASKS]     (default 1000000)
#
# 1. tests/mkstore --many TASKS fills a store (70% done, 20% dead over 25
#    errors, 5% scheduled, 5% ready), everything paused so nothing moves.
# 2. The daemon (console on) against the fake Magento; each API call the
#    pages make, timed with curl (median of 5).
# 3. Headless Chromium (tests/browser.py): time to the first render of the
#    overview, the dead letters, a filtered dead list and the whole dead list
#    (window.m2wFirstRenderMs: from navigation to the first data drawn).
# 4. The daemon's CPU with no console, then with CONSOLES (5) overviews open
#    (each polls every 2 s) for SECONDS (60).
set -eu
. "$(dirname "$0")/bench-lib.sh"
TASKS=${1:-1000000}
MKSTORE="$top/tests/mkstore"
need_built "$M2W" "$QCTL" "$FAKE" "$MKSTORE"
need_cmds curl jq chromium chromedriver python3
SECONDS_OPEN=${SECONDS:-60}

T=$(mktemp -d "${TMPDIR:-/tmp}/m2w-bench-console.XXXXXX")
S="$T/store"
FPID= DPID=
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null
	[ -n "$FPID" ] && kill "$FPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

say "== filling a store with $TASKS tasks"
t0=$(now_ms)
"$MKSTORE" "$S" --many "$TASKS" >&2
say "filled in $(calc "($(now_ms) - $t0) / 1000") s; $(du -sh "$S" | cut -f1) on disk"
"$QCTL" -d "$S" pause >/dev/null

"$FAKE" --port 0 --port-file "$T/fport" --token t >"$T/fake.log" 2>&1 & FPID=$!
while [ ! -s "$T/fport" ]; do sleep 0.1; done
PW=bench-password
HASH=$(printf '%s\n' "$PW" | "$M2W" --hash-password)
HP=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 + 20000 ))
cat >"$T/m2w.conf" <<EOF
[store]
path = $S
map_max = 8GiB
[magento]
base_url = http://127.0.0.1:$(cat "$T/fport")
auth = token
token = t
[log]
level = warn
file = $T/m2w.log
[http]
enabled = yes
port = $HP
tokens = t
console = yes
console_users = ops:operator:$HASH
EOF
"$M2W" -c "$T/m2w.conf" & DPID=$!
H="http://127.0.0.1:$HP"
i=0
until curl -sf "$H/healthz" >/dev/null; do
	sleep 0.2; i=$((i + 1)); [ $i -lt 150 ] || die "the daemon did not start"
done

# a session for curl
curl -s -c "$T/jar" -o /dev/null "$H/ui/login"
LT=$(awk '$6 == "m2w_login" { print $7 }' "$T/jar")
curl -s -b "$T/jar" -c "$T/jar" -o /dev/null -H 'Content-Type: application/json' \
	-H "X-CSRF-Token: $LT" -d "{\"user\":\"ops\",\"password\":\"$PW\"}" "$H/ui/api/login"

# api NAME PATH: the median of 5 timed GETs, in ms
api() {
	for _ in 1 2 3 4 5; do
		curl -s -b "$T/jar" -o /dev/null \
			-w '%{time_total} %{size_download}\n' "$H$2"
	done | sort -n | sed -n 3p | awk -v n="$1" \
		'{ printf "api  %-34s %7.1f ms  (%d bytes)\n", n, $1 * 1000, $2 }'
}
echo "== the console's API on $TASKS tasks (median of 5)"
api "overview" /ui/api/overview
api "history (day)" "/ui/api/history?range=day"
api "dead letters (all)" /ui/api/dead-groups
api "dead letters (tracking)" "/ui/api/dead-groups?type=tracking"
api "dead list, first page" "/ui/api/tasks?state=dead"
api "dead list, text filter" "/ui/api/tasks?state=dead&type=tracking&q=does%20not%20allow"
api "dead list, text matching nothing" "/ui/api/tasks?state=dead&q=no-such-text"
api "done, last hour" "/ui/api/tasks?state=done&since=$(( $(now_ms) - 3600000 ))"
api "one task" /ui/api/tasks/12345

echo "== first render in headless Chromium (median of 3 loads)"
M2W_URL=$H M2W_USER=ops M2W_PASSWORD=$PW QCTL=$QCTL STORE=$S ARTEFACTS=$T/art \
	XSS=- BENCH=1 python3 "$here/../../tests/browser.py" | grep '^bench' || true

echo "== the daemon's CPU, ${SECONDS_OPEN} s each"
c0=$(cpu "$DPID"); sleep "$SECONDS_OPEN"; c1=$(cpu "$DPID")
echo "cpu  no console open         $(calc "($c1 - $c0) * 100 / $SECONDS_OPEN") % of one core"
M2W_URL=$H M2W_USER=ops M2W_PASSWORD=$PW QCTL=$QCTL STORE=$S ARTEFACTS=$T/art \
	XSS=- BENCH=consoles CONSOLES=${CONSOLES:-5} SECONDS=$SECONDS_OPEN \
	python3 "$here/../../tests/browser.py" >"$T/consoles.out" 2>&1 &
BP=$!
while ! grep -q "consoles open" "$T/consoles.out" 2>/dev/null; do
	kill -0 $BP 2>/dev/null || { cat "$T/consoles.out"; die "the consoles did not open"; }
	sleep 0.5
done
c0=$(cpu "$DPID"); t0=$(now_ms)
wait $BP || true
c1=$(cpu "$DPID"); t1=$(now_ms)
echo "cpu  ${CONSOLES:-5} consoles refreshing     $(calc "($c1 - $c0) * 100000 / ($t1 - $t0)") % of one core"
