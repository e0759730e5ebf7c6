#!/bin/sh
# shoppers.sh - what m2worker's calls cost Magento's shoppers: the daemon
# drains tracking tasks against a fake Magento with a fixed number of PHP
# workers while tools/bench/probe plays the shoppers (page views at a fixed
# rate), once per worker setting, and the table shows how much slower the
# shoppers' pages got next to how fast the drain went.
#
# Usage: tools/bench/shoppers.sh [-q]
#
#   -q             quick mode: TASKS=5000 unless TASKS is set
#
# Environment (defaults in brackets):
#   SETTINGS       the daemon settings to measure, one drain each
#                  ["fixed:8 fixed:16 fixed:32 fixed:64 auto"]:
#                  fixed:N  [workers] threads = N
#                  auto     [magento] concurrency = auto, concurrency_min = 4,
#                           concurrency_max = 64 and threads = 64 (a build
#                           that refuses those keys prints "auto: not
#                           supported by this build" and the rest goes on)
#   TASKS          tracking tasks per drain [50000; quick 5000], on
#                  TASKS/2 orders (round-robin: at most 2 tracks an order)
#   PHP_WORKERS    the fake's --php-workers [16]
#   LATENCY_MS     the fake's --latency-ms, per API call [20]
#   STOREFRONT_MS  the fake's --storefront-ms, per page view [30]
#   PROBE_RATE     shoppers' page views per second [50]
#   PROBE_CONNS    the probe's connections [16]
#   IDLE_SECONDS   how long the probe runs alone first [10]
#   PROBE_MAX_S    the longest a probe runs during a drain [7200]
#   BASE           where the temporary directory goes [${TMPDIR:-/tmp}]
#
# How it goes: a fake Magento (--php-workers 16 --latency-ms 20
# --storefront-ms 30) and the probe alone give the idle p50/p99 of a page
# view. Then, for each setting: a fresh store with TASKS tracking tasks
# (qctl enqueue, before the daemon starts), a fresh fake with the same
# options, the probe started, the daemon started and timed until `qctl
# stats` shows nothing ready, scheduled, leased or waiting (polled every
# 200 ms), the probe stopped (SIGTERM: it reports what it sent), the
# daemon stopped, the fake's state read.
#
# The table:
#   setting        as in SETTINGS
#   seconds        the drain: daemon start .. the poll that saw nothing left
#   tasks/s        TASKS / seconds
#   p50 ms, p99 ms the probe's page views during the drain (latency from
#                  when each was due: waiting for a PHP worker included)
#   p99/idle       p99 / the idle p99: how much worse the slow pages got
#   queued max     the fake's php_queued_max: the longest the PHP workers'
#                  queue got (the daemon's calls and the pages together)
# A line per setting before it adds the calls per task, the probe's
# requests and errors, done/dead, and both processes' CPU seconds.
#
# Numbers only: it never passes or fails on them. It exits non-zero only
# when it cannot run (a program not built, the fake or the daemon not
# starting, a fixed setting's config refused). Everything listens on
# 127.0.0.1; the processes it started are stopped by their PIDs and the
# temporary directory is removed on exit, also on Ctrl-C.
# shellcheck disable=SC2046 # set -- $(...) splits on purpose
set -u

usage() {
	echo "usage: $0 [-q]   (settings and sizes in the environment: see the top of the script)" >&2
	exit 2
}

QUICK=
while getopts qh opt; do
	case $opt in
	q) QUICK=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage

SETTINGS=${SETTINGS:-fixed:8 fixed:16 fixed:32 fixed:64 auto}
if [ -n "$QUICK" ]; then TASKS=${TASKS:-5000}; else TASKS=${TASKS:-50000}; fi
PHP_WORKERS=${PHP_WORKERS:-16}
LATENCY_MS=${LATENCY_MS:-20}
STOREFRONT_MS=${STOREFRONT_MS:-30}
PROBE_RATE=${PROBE_RATE:-50}
PROBE_CONNS=${PROBE_CONNS:-16}
IDLE_SECONDS=${IDLE_SECONDS:-10}
PROBE_MAX_S=${PROBE_MAX_S:-7200}
BASE=${BASE:-${TMPDIR:-/tmp}}

isnum() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }
for v in TASKS PHP_WORKERS LATENCY_MS STOREFRONT_MS PROBE_RATE PROBE_CONNS IDLE_SECONDS PROBE_MAX_S; do
	x=''
	eval "x=\$$v"
	isnum "$x" || { echo "$v: a number, not '$x'" >&2; exit 2; }
done
if [ "$TASKS" -lt 1 ] || [ "$PROBE_RATE" -lt 1 ] || [ "$IDLE_SECONDS" -lt 1 ] ||
	[ "$PROBE_MAX_S" -lt 1 ]; then
	echo "TASKS, PROBE_RATE, IDLE_SECONDS and PROBE_MAX_S: at least 1" >&2
	exit 2
fi
for s in $SETTINGS; do
	case $s in
	auto) ;;
	fixed:*) n=${s#fixed:}; { isnum "$n" && [ "$n" -ge 1 ] && [ "$n" -le 256 ]; } ||
		{ echo "SETTINGS: $s: fixed:1..256" >&2; exit 2; } ;;
	*) echo "SETTINGS: '$s' is neither fixed:N nor auto" >&2; exit 2 ;;
	esac
done
ORDERS=$(((TASKS + 1) / 2))

# shellcheck source=tools/bench/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
need_built "$M2W" "$QCTL" "$FAKE" "$PROBE"
need_cmds jq curl awk

TOKEN=bench-token
T=$(mktemp -d "$BASE/m2w-shoppers.XXXXXX") || exit 1
FAKE_PID='' DPID='' PROBE_PID=''

stop_pid() { # PID: SIGTERM, SIGKILL after 5 s
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
cleanup() {
	stop_pid "$PROBE_PID"
	stop_pid "$DPID"
	stop_pid "$FAKE_PID"
	PROBE_PID='' DPID='' FAKE_PID=''
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_fake DIR: a fresh fake Magento; sets FAKE_PID, PORT and F
start_fake() {
	"$FAKE" --port 0 --port-file "$1/port" --orders "$ORDERS" --products 100 \
		--token "$TOKEN" --php-workers "$PHP_WORKERS" \
		--latency-ms "$LATENCY_MS" --storefront-ms "$STOREFRONT_MS" \
		>"$1/fake.log" 2>&1 &
	FAKE_PID=$!
	i=0
	while [ ! -s "$1/port" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i + 1)); done
	[ -s "$1/port" ] || { say "fake did not start:"; cat "$1/fake.log" >&2; return 1; }
	PORT=$(cat "$1/port")
	F="http://127.0.0.1:$PORT"
}

# task k on order ((k-1) mod ORDERS) + 1: neighbours in the queue are on
# different orders, and no order has more than 2 tracks
seq 1 "$TASKS" | awk -v n="$ORDERS" '{ printf "{\"order\":\"%d\",\"track\":\"SHOP%d\",\"carrier\":\"ups\"}\n", 1000000000 + ($1 - 1) % n + 1, $1 }' >"$T/tasks.ndjson"

echo "m2worker shoppers benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "machine: $(uname -srm), $(nproc) CPUs; store on $(stat -f -c %T "$T" 2>/dev/null || echo "?") ($BASE)"
echo "fake: $PHP_WORKERS PHP workers, $LATENCY_MS ms an API call, $STOREFRONT_MS ms a page view; $TASKS tracking tasks on $ORDERS orders"
echo "shoppers: $PROBE_RATE page views/s over $PROBE_CONNS connections; settings: $SETTINGS"
echo

# --- idle: the probe alone
mkdir "$T/idle"
start_fake "$T/idle" || exit 1
"$PROBE" -p "$PORT" -r "$PROBE_RATE" -d "$IDLE_SECONDS" -c "$PROBE_CONNS" >"$T/idle/probe.out" 2>&1
line=$(grep '^probe ' "$T/idle/probe.out" | tail -n 1)
[ -n "$line" ] || die "the idle probe printed no line: $(cat "$T/idle/probe.out")"
idle50=$(field p50_ms "$line") idle99=$(field p99_ms "$line")
stop_pid "$FAKE_PID"
FAKE_PID=
echo "idle (probe alone, $IDLE_SECONDS s): $line"

# run_one SETTING: one drain; prints its line and appends a row to $T/rows
run_one() {
	S=$1
	R="$T/run"
	rm -rf "$R"
	mkdir "$R" || return 1
	case $S in
	fixed:*) threads=${S#fixed:} extra= ;;
	auto) threads=64 extra="concurrency = auto
concurrency_min = 4
concurrency_max = 64" ;;
	esac
	cat >"$R/m2w.conf" <<EOF
[store]
path = $R/store
[magento]
base_url = http://127.0.0.1:9
auth = token
token = $TOKEN
$extra
[workers]
threads = $threads
[log]
level = warn
file = $R/m2w.log
[tracking]
lease = 10m
EOF
	if ! "$M2W" -c "$R/m2w.conf" --check-config >"$R/check.out" 2>&1; then
		if [ "$S" = auto ] && grep -q "unknown key" "$R/check.out"; then
			echo "auto: not supported by this build"
			return 0
		fi
		say "$S: config refused:"
		cat "$R/check.out" >&2
		[ "$S" = auto ] && return 0
		return 1
	fi

	start_fake "$R" || return 1
	sed -i "s|^base_url = .*|base_url = $F|" "$R/m2w.conf"
	"$QCTL" -d "$R/store" enqueue --type tracking --format ndjson "$T/tasks.ndjson" >"$R/enq.out" 2>&1 ||
		{ say "enqueue failed:"; tail -5 "$R/enq.out" >&2; return 1; }

	# the shoppers, then the daemon, timed until nothing is pending
	"$PROBE" -p "$PORT" -r "$PROBE_RATE" -d "$PROBE_MAX_S" -c "$PROBE_CONNS" >"$R/probe.out" 2>&1 &
	PROBE_PID=$!
	t0=$(now_ms)
	"$M2W" -c "$R/m2w.conf" >"$R/m2w.out" 2>&1 &
	DPID=$!
	lastdone=-1 lastchange=$t0 status=ok
	while :; do
		sleep 0.2
		if ! kill -0 "$DPID" 2>/dev/null; then
			status="daemon exited"; break
		fi
		"$QCTL" -d "$R/store" stats --json >"$R/stats.json" 2>/dev/null || continue
		set -- $(jq -r '.totals | "\(.ready + .scheduled + .leased + .waiting) \(.done)"' "$R/stats.json")
		[ "$1" = 0 ] && break
		now=$(now_ms)
		if [ "$2" != "$lastdone" ]; then
			lastdone=$2 lastchange=$now
		elif [ $((now - lastchange)) -gt 60000 ]; then
			status="stalled (no task done for 60 s)"; break
		fi
	done
	t1=$(now_ms)
	kill -TERM "$PROBE_PID" 2>/dev/null
	wait "$PROBE_PID"
	PROBE_PID=
	dcpu=$(cpu "$DPID") fcpu=$(cpu "$FAKE_PID")
	if kill -0 "$DPID" 2>/dev/null; then
		stop_pid "$DPID"
	else
		wait "$DPID"
		say "[$S] daemon exited early with status $?:"
		tail -n 20 "$R/m2w.out" "$R/m2w.log" >&2 2>/dev/null
	fi
	DPID=
	"$QCTL" -d "$R/store" stats --json >"$R/stats.json"
	ndone=$(jq .totals.done "$R/stats.json")
	ndead=$(jq .totals.dead "$R/stats.json")
	curl -s "$F/_fake/state" >"$R/state.json"
	stop_pid "$FAKE_PID"
	FAKE_PID=
	set -- $(jq -r '"\(.total_requests) \(.php_queued_max) \(.php_busy_max) \(.php_wait_ms_total) \(.php_served_storefront)"' "$R/state.json")
	calls=$1 qmax=$2 bmax=$3 waitms=$4 pages=$5

	line=$(grep '^probe ' "$R/probe.out" | tail -n 1)
	if [ -n "$line" ]; then
		p50=$(field p50_ms "$line") p99=$(field p99_ms "$line")
		preq=$(field requests "$line") perr=$(field errors "$line")
	else
		p50=- p99=- preq=0 perr='?'
		say "[$S] the probe printed no line: $(tail -n 3 "$R/probe.out")"
	fi
	secs=$(calc "($t1 - $t0) / 1000" %.2f)
	tps=$(calc "$TASKS / $secs" %.0f)
	cpt=$(calc "$calls / $TASKS" %.2f)
	if [ "$p99" != - ] && awk -v i="$idle99" 'BEGIN { exit !(i > 0) }'; then
		ratio=$(calc "$p99 / $idle99" %.1f)
	else
		ratio=-
	fi
	printf '%-9s %8s %8s %8s %8s %9s %11s\n' "$S" "$secs" "$tps" "$p50" "$p99" "$ratio" "$qmax" >>"$T/rows"
	echo "$S: drained in $secs s ($tps tasks/s, $cpt calls/task); pages: p50 $p50 ms, p99 $p99 ms ($ratio x idle), $preq sent, $perr errors; PHP workers: queue at most $qmax, busy at most $bmax, $(calc "$waitms / 1000" %.1f) s waited in all, $pages pages served; done $ndone, dead $ndead; CPU: daemon $dcpu s, fake $fcpu s"
	[ "$status" = ok ] || echo "$S NOTE: $status"
	rm -rf "$R"
}

: >"$T/rows"
for s in $SETTINGS; do
	run_one "$s" || { echo "$s: could not run (see above)"; exit 1; }
done

echo
printf '%-9s %8s %8s %8s %8s %9s %11s\n' setting seconds tasks/s "p50 ms" "p99 ms" "p99/idle" "queued max"
printf '%-9s %8s %8s %8s %8s %9s %11s\n' idle - - "$idle50" "$idle99" 1.0 -
cat "$T/rows"
