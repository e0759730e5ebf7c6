#!/bin/bash
# ingest.sh - ingest benchmark: how fast tasks get into the store, durably,
# by every producer: qctl enqueue of a CSV file, the daemon's CSV directory
# watcher, HTTP push in batches, HTTP push one task per request; and
# beanstalkd -f 0 (fsync on every write) taking puts from as many clients
# in the same run, for the group-commit ratio.
#
# Usage: tools/bench/ingest.sh [-n ROWS] [-b TASKS] [-s TASKS] [-d DIR] [-q] [-u]
#
#   -n ROWS    rows of the tracking CSV (default 1000000; quick 100000)
#   -b TASKS   tasks pushed in batches of 100 by 4 clients (default 200000;
#              quick 20000)
#   -s TASKS   tasks pushed one per request by 16 clients, and puts sent to
#              beanstalkd by 16 clients (default 50000; quick 5000)
#   -d DIR     temporary directory under DIR (default: the current
#              directory, so the real disk rather than a tmpfs /tmp); every
#              measurement gets a fresh store in it
#   -q         quick mode (a smoke run, ~30 s)
#   -u         unsynced: the daemon's stores with nosync = yes. Not a
#              durable figure: it shows what the HTTP path costs without
#              the commit (the ceiling the fsync'd runs are measured against)
#
# Measurements (each on a fresh store, every commit fsync'd: nosync = no):
#   csv qctl     `qctl enqueue --type tracking FILE` (batches of 1000)
#   csv watch    the daemon's [watch] directory: the file renamed into
#                incoming/, timed until it is in processed/ (polled every
#                20 ms); the tracking type paused before the daemon starts
#   http batch   POST /v1/tasks, JSON arrays of 100 items, 4 clients with
#                keep-alive, each waiting for its 202 before the next
#   http single  POST /v1/tasks of one item, 16 clients with keep-alive
#   http plain   the same with rest tasks, which have no idempotency key and
#                no ordering group (as a beanstalkd job has neither)
#   beanstalkd   `beanstalkd -f 0`, 16 clients each `put` one at a time
#
# HTTP push of a paused type is refused (503), so for the HTTP runs the
# workers are kept away differently: one worker thread, Magento at a closed
# port and [breaker] failures = 1, cooldown = 1h, so the first task fails
# once and the breaker then stops all leasing for the rest of the run.
#
# The CSV has ROWS/4 orders, 4 parcels each (tracking tasks of one order are
# serialised by their ordering key, so most wait behind the first: the
# store's group bookkeeping is part of the cost). Pushed tasks are spread
# the same way. The load generator is tools/bench/push (C, one thread and
# one keep-alive connection per client); its CPU seconds are printed next
# to the daemon's, so one can tell which side was the limit.
#
# This prints numbers and the targets from the issue; it never fails on
# them. It exits non-zero only when it cannot run (a binary not built, the
# daemon not starting, a push refused, a count not matching). Everything
# listens on 127.0.0.1; the processes it starts are stopped by their PIDs and
# the temporary directory is removed on exit, also on Ctrl-C.
# shellcheck disable=SC2046 # set -- $(...) splits on purpose
set -u

usage() {
	echo "usage: $0 [-n ROWS] [-b TASKS] [-s TASKS] [-d DIR] [-q] [-u]" >&2
	exit 2
}

ROWS='' NBATCH='' NSINGLE='' BASE=. QUICK=''
while getopts n:b:s:d:quh opt; do
	case $opt in
	n) ROWS=$OPTARG ;;
	b) NBATCH=$OPTARG ;;
	s) NSINGLE=$OPTARG ;;
	d) BASE=$OPTARG ;;
	q) QUICK=1 ;;
	u) NOSYNC=yes ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
if [ -n "$QUICK" ]; then
	: "${ROWS:=100000}" "${NBATCH:=20000}" "${NSINGLE:=5000}"
else
	: "${ROWS:=1000000}" "${NBATCH:=200000}" "${NSINGLE:=50000}"
fi
isnum() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }
for v in "$ROWS" "$NBATCH" "$NSINGLE"; do
	{ isnum "$v" && [ "$v" -ge 16 ]; } || { echo "-n -b -s: numbers >= 16" >&2; exit 2; }
done

. "$(dirname "$0")/bench-lib.sh"
need_built "$M2W" "$QCTL" "$PUSH"
need_cmds jq curl awk
[ -r /proc/self/stat ] || { echo "/proc is needed for the CPU times" >&2; exit 1; }
HAVE_BS=''
command -v beanstalkd >/dev/null && HAVE_BS=1

TOKEN=bench-push-token
T=$(mktemp -d "$BASE/m2w-ingest.XXXXXX") || exit 1
T=$(cd "$T" && pwd)
DPID=
BPID=

stop_pid() { # PID: SIGTERM, SIGKILL after 5 s
	kill -TERM "$1" 2>/dev/null
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
cleanup() {
	[ -n "$DPID" ] && stop_pid "$DPID"
	[ -n "$BPID" ] && stop_pid "$BPID"
	DPID='' BPID=''
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# total STORE: tasks in the store, any state
total() {
	"$QCTL" -d "$1" stats --json | jq '.totals | .ready + .scheduled + .leased + .waiting + .done + .dead + .superseded'
}

# config DIR MAGENTO_URL LOG_LEVEL EXTRA: the daemon's configuration, HTTP
# on $HP (chosen by start)
config() {
	cat >"$1/m2w.conf" <<EOF
[store]
path = $1/store
nosync = ${NOSYNC:-no}
[magento]
base_url = $2
auth = token
token = unused
timeout = 2s
[log]
level = $3
file = $1/m2w.log
[http]
enabled = yes
listen = 127.0.0.1
port = $HP
tokens = $TOKEN
connections = 64
timeout = 60s
$4
EOF
}

# start DIR MAGENTO_URL LOG_LEVEL EXTRA: the daemon on a free port, up when
# /healthz answers; sets DPID and HP
start() {
	tries=0
	while [ $tries -lt 10 ]; do
		tries=$((tries + 1))
		HP=$("$PUSH" freeport) || die "no free port"
		config "$1" "$2" "$3" "$4"
		: >"$1/m2w.log"
		"$M2W" -c "$1/m2w.conf" >"$1/m2w.out" 2>&1 &
		DPID=$!
		i=0
		while [ $i -lt 100 ]; do
			if ! kill -0 "$DPID" 2>/dev/null; then
				wait "$DPID"
				DPID=
				break
			fi
			[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/healthz")" = 200 ] &&
				return 0
			sleep 0.05
			i=$((i + 1))
		done
		[ -n "$DPID" ] && { stop_pid "$DPID"; DPID=; }
		grep -q "cannot listen" "$1/m2w.log" "$1/m2w.out" 2>/dev/null ||
			{ tail -n 20 "$1/m2w.out" "$1/m2w.log" >&2; break; }
	done
	die "the daemon did not start"
}
stop() {
	kill -TERM "$DPID"
	wait "$DPID" || say "daemon exit status $?"
	DPID=
}

ROWS_OUT="$T/rows"
: >"$ROWS_OUT"
# row NAME TASKS SECONDS DAEMON_CPU CLIENT_CPU TARGET: a line of the table;
# sets rate
row() {
	rate=$(calc "$2 / ($3 > 0 ? $3 : 0.001)" %.0f)
	if [ -n "$6" ]; then
		verdict=$(awk -v r="$rate" -v t="$6" 'BEGIN { print (r >= t ? "ok" : "below") }')
		shown=">= $6"
	else
		verdict='' shown='-'
	fi
	printf '%-34s %9s %8s %9s %12s %7s %10s %10s\n' "$1" "$2" "$3" "$rate" "$shown" "$verdict" "$4" "$5" >>"$ROWS_OUT"
}

fstype=$(stat -f -c %T "$T" 2>/dev/null || echo "?")
dev=$(df -P "$T" 2>/dev/null | awk 'NR == 2 { print $1 }')
mnt=$(df -P "$T" 2>/dev/null | awk 'NR == 2 { print $6 }')
echo "m2worker ingest benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "machine: $(uname -srm), $(nproc) CPUs; stores on $fstype ($dev at $mnt; $T)"
echo "CSV rows: $ROWS over $((ROWS / 4)) orders; HTTP batch: $NBATCH tasks; one per request: $NSINGLE tasks; $([ "${NOSYNC:-no}" = yes ] && echo 'NOSYNC: commits not fsync'"'"'d, not a durable figure' || echo "every commit fsync'd")"
[ -n "$HAVE_BS" ] && echo "beanstalkd: $(beanstalkd -v 2>&1 | head -n 1)"
echo

# --- 1. the CSV, in the tracking-updater format
say "generating $ROWS CSV rows..."
CSV="$T/tracking.csv"
awk -v n="$ROWS" -v o=$((ROWS / 4)) 'BEGIN {
	print "order_number,tracking_number,carrier_code,title"
	split("ups fedex dhl usps", code, " "); split("UPS FedEx DHL USPS", title, " ")
	for (k = 1; k <= n; k++) {
		c = 1 + k % 4
		printf "%d,BENCH%08d,%s,%s\n", 1000000000 + (k - 1) % o + 1, k, code[c], title[c]
	}
}' >"$CSV" || die "cannot write $CSV"
sync
echo "CSV: $(du -h "$CSV" | cut -f1) ($ROWS rows)"

# 1a. qctl enqueue
R="$T/qctl"
mkdir "$R"
say "[csv qctl] qctl enqueue --type tracking ($ROWS rows)..."
TIMEFORMAT='%R %U %S'
{ time "$QCTL" -d "$R/store" enqueue --type tracking "$CSV" >"$R/out" 2>"$R/err"; } 2>"$R/time"
rc=$?
[ $rc -eq 0 ] || { cat "$R/out"; tail -n 5 "$R/err"; die "qctl enqueue failed ($rc)"; }
set -- $(cat "$R/time")
secs=$1 qcpu=$(calc "$2 + $3" %.2f)
n=$(total "$R/store")
[ "$n" = "$ROWS" ] || die "qctl enqueue: $n tasks in the store, wanted $ROWS ($(cat "$R/out"))"
row "csv: qctl enqueue (batches 1000)" "$ROWS" "$secs" "$qcpu" "-" 100000
echo "csv qctl:    $(cat "$R/out") in $secs s: $rate rows/s (qctl CPU $qcpu s, store $(du -sh "$R/store" | cut -f1))"
rm -rf "$R"

# 1b. the daemon's watch directory
R="$T/watch"
mkdir -p "$R/incoming"
printf 'order_number,tracking_number,carrier_code,title\n' |
	"$QCTL" -d "$R/store" enqueue --type tracking - >/dev/null || die "cannot create the store"
"$QCTL" -d "$R/store" pause tracking >/dev/null || die "qctl pause failed"
say "[csv watch] the daemon's [watch] directory ($ROWS rows)..."
start "$R" "http://127.0.0.1:9" info "[watch \"bench\"]
path = $R/incoming
type = tracking
settle = 200ms"
cp "$CSV" "$R/incoming/.drop"       # a dot file: never taken
sync
c0=$(cpu "$DPID")
t0=$(now_ms)
mv "$R/incoming/.drop" "$R/incoming/20250326_120000.csv"
while [ ! -e "$R/processed/20250326_120000.csv" ]; do
	kill -0 "$DPID" 2>/dev/null || die "the daemon exited: $(tail -n 5 "$R/m2w.log")"
	[ -e "$R/failed/20250326_120000.csv" ] && die "the file went to failed/: $(cat "$R"/failed/*.txt 2>/dev/null)"
	[ $(($(now_ms) - t0)) -gt 600000 ] && die "not processed after 10 min"
	sleep 0.02
done
t1=$(now_ms)
c1=$(cpu "$DPID")
stop
secs=$(calc "($t1 - $t0) / 1000" %.2f)
dcpu=$(calc "$c1 - $c0" %.2f)
n=$(total "$R/store")
[ "$n" = "$ROWS" ] || die "watch: $n tasks in the store, wanted $ROWS"
done_line=$(grep 'file.done' "$R/m2w.log" | tail -n 1)
row "csv: daemon [watch] directory" "$ROWS" "$secs" "$dcpu" "-" 100000
echo "csv watch:   rename -> processed/ in $secs s: $rate rows/s (daemon CPU $dcpu s); log: ${done_line#* file.done }"
rm -rf "$R"

# --- 2. and 3. HTTP push; workers kept away by an open breaker
NOWORK="[workers]
threads = 1
[breaker]
failures = 1
cooldown = 1h"

# push_run NAME DIR CLIENTS BATCH TASKS TARGET LABEL [PUSH-OPTION]: one
# HTTP run on a fresh store; sets rate
push_run() {
	R=$2
	mkdir "$R"
	start "$R" "http://127.0.0.1:9" warn "$NOWORK"
	c0=$(cpu "$DPID")
	out=$("$PUSH" http ${8:-} -p "$HP" -t "$TOKEN" -c "$3" -b "$4" -n "$5" -o $(($5 / 4 > 0 ? $5 / 4 : 1))) ||
		die "$1: push failed"
	c1=$(cpu "$DPID")
	stop
	n=$(total "$R/store")
	[ "$n" = "$5" ] || die "$1: $n tasks in the store, wanted $5"
	secs=$(field seconds "$out")
	dcpu=$(calc "$c1 - $c0" %.2f)
	ccpu=$(field cpu_s "$out")
	row "$1" "$5" "$secs" "$dcpu" "$ccpu" "$6"
	echo "$7 $5 tasks in $(field requests "$out") requests, $secs s: $rate tasks/s; request p50 $(field p50_ms "$out") ms, p99 $(field p99_ms "$out") ms; CPU: daemon $dcpu s, client $ccpu s"
	rm -rf "$R"
}

say "[http batch] $NBATCH tasks, 100 per request, 4 clients..."
push_run "http: batches of 100, 4 clients" "$T/hb" 4 100 "$NBATCH" 50000 "http batch: "

# beanstalkd first: its rate is the single run's target
bsr=''
if [ -n "$HAVE_BS" ]; then
	say "[beanstalkd] $NSINGLE puts, 16 clients..."
	mkdir "$T/bs"
	ok=''
	for _ in 1 2 3 4 5; do
		BP=$("$PUSH" freeport) || die "no free port"
		beanstalkd -l 127.0.0.1 -p "$BP" -b "$T/bs" -f 0 >"$T/bs.log" 2>&1 &
		BPID=$!
		i=0
		while [ $i -lt 60 ] && kill -0 "$BPID" 2>/dev/null; do
			(exec 3<>"/dev/tcp/127.0.0.1/$BP") 2>/dev/null && { ok=1; break; }
			sleep 0.05
			i=$((i + 1))
		done
		[ -n "$ok" ] && break
		stop_pid "$BPID"
		BPID=
	done
	[ -n "$ok" ] || die "beanstalkd did not start: $(cat "$T/bs.log")"
	c0=$(cpu "$BPID")
	out=$("$PUSH" beanstalkd -p "$BP" -c 16 -n "$NSINGLE" -z 200) || die "beanstalkd puts failed"
	c1=$(cpu "$BPID")
	stop_pid "$BPID"
	BPID=
	secs=$(field seconds "$out")
	bcpu=$(calc "$c1 - $c0" %.2f)
	ccpu=$(field cpu_s "$out")
	row "beanstalkd -f 0: put, 16 clients" "$NSINGLE" "$secs" "$bcpu" "$ccpu" ""
	bsr=$rate
	echo "beanstalkd:  $NSINGLE puts (200 bytes) in $secs s: $bsr puts/s; p50 $(field p50_ms "$out") ms, p99 $(field p99_ms "$out") ms; CPU: beanstalkd $bcpu s, client $ccpu s"
	rm -rf "$T/bs"
else
	echo "beanstalkd:  not installed, skipped"
fi

say "[http single] $NSINGLE tasks, 1 per request, 16 clients..."
tgt=''
[ -n "$bsr" ] && tgt=$((bsr * 3))
push_run "http: 1 per request, 16 clients" "$T/hs" 16 1 "$NSINGLE" "$tgt" "http single:"
rs=$rate
say "[http single, plain] $NSINGLE rest tasks (no key, no group), 1 per request, 16 clients..."
push_run "http: same, plain rest tasks" "$T/hp" 16 1 "$NSINGLE" "$tgt" "http plain: " -r
rp=$rate

echo
printf '%-34s %9s %8s %9s %12s %7s %10s %10s\n' measurement tasks seconds tasks/s target result "cpu srv s" "cpu cli s"
cat "$ROWS_OUT"
echo
if [ -n "$bsr" ]; then
	ratio=$(calc "$rs / $bsr" %.2f)
	echo "http 1 per request, 16 clients / beanstalkd -f 0 put, 16 clients: ${ratio}x (target >= 3x): $(awk -v r="$ratio" 'BEGIN { print (r >= 3 ? "ok" : "below") }')"
	echo "  the same with plain rest tasks (like beanstalkd jobs: no idempotency key, no ordering group): $(calc "$rp / $bsr" %.2f)x"
else
	echo "http 1 per request / beanstalkd: skipped (beanstalkd not installed)"
fi
echo "cpu srv s: CPU seconds of the process taking the tasks (qctl, the daemon, beanstalkd) during the run; cpu cli s: the load generator's"
