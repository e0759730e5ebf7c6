#!/bin/sh
# e2e.sh - end-to-end benchmark: m2worker draining tracking tasks against the
# fake Magento with a fixed latency per API call.
#
# Usage: tools/bench/e2e.sh [-n TASKS] [-w "5 32 64"] [-l LATENCY_MS]
#                           [-o ORDERS] [-f FAIL_RATE] [-s SAMPLE] [-d DIR] [-q]
#
#   -n TASKS       tracking tasks per run (default 100000; quick 3000)
#   -w "W ..."     worker counts, one run each (default "5 32 64"; quick "4 16")
#   -l MS          latency the fake adds to every API call (default 20)
#   -o ORDERS      orders in the fake (default TASKS: one task per order);
#                  fewer spreads the tasks round-robin over ORDERS orders
#                  (a check whether the fake's size matters; see the README)
#   -f RATE        fraction of API calls the fake answers 503 (Retry-After
#                  1 s; default 0): the drain with faults
#   -s SAMPLE      tasks whose attempt duration is read (default 200)
#   -d DIR         temporary directory under DIR (default ${TMPDIR:-/tmp});
#                  the store lives there, so pick the disk you care about
#   -q             quick mode: -n 3000 -w "4 16" unless given
#
# This prints numbers; it never passes or fails on them. It exits non-zero
# only when it cannot run (missing binary, the fake or the daemon not
# starting). Everything listens on 127.0.0.1 only. The processes it starts
# are stopped by their PIDs and the temporary directory is removed on exit,
# also on Ctrl-C. The per-W line also gives both processes' CPU seconds,
# which tells whether the daemon or the fake is the limit.
#
# Each worker count W gets a fresh store and a fresh fake Magento with one
# order per task (tracking tasks are serialised per order by their ordering
# key, so one task per order lets all W workers run at once; -o spreads them
# over fewer orders, round-robin, so a later task adds its track to the
# order's shipment instead of creating one: still 3 calls). The tasks are
# enqueued before the daemon starts (timed separately: the durable ingest
# rate), then the daemon is started and timed until `qctl stats` shows
# nothing ready, scheduled, leased or waiting (polled every 200 ms; the
# daemon's VmRSS is sampled at each poll, VmHWM read at the end).
#
# Per W:
#   tasks/s       TASKS / drain time (daemon start .. the poll that saw 0)
#   calls/task    the fake's total API requests / TASKS (a tracking task on
#                 an order without a shipment is 3: find the order, list its
#                 shipments, ship with the track)
#   ceiling       W / (calls/task x latency): what W workers doing nothing
#                 but waiting on the fake could reach
#   p50/p99 ms    duration of the task's attempt (history[].duration_ms of
#                 `qctl show`) over SAMPLE tasks spread evenly over the run;
#                 queueing before the attempt is not included (every task
#                 was queued before the start, so enqueue->done would only
#                 measure the backlog)
#   RSS MiB       the daemon's peak resident size (VmHWM); it includes the
#                 pages of the LMDB store file the daemon has touched, which
#                 grow with the number of tasks in the store
#   anon MiB      the largest RssAnon seen at a poll: the daemon's own
#                 memory (heap, thread stacks), without the store's pages
#   once          every tracking number is in the fake exactly once and no
#                 order has more than one shipment
# shellcheck disable=SC2046 # set -- $(...) splits on purpose
set -u

usage() {
	echo "usage: $0 [-n TASKS] [-w \"5 32 64\"] [-l LATENCY_MS] [-o ORDERS] [-f FAIL_RATE] [-s SAMPLE] [-d DIR] [-q]" >&2
	exit 2
}

TASKS='' WORKERS='' ORDERS='' LAT=20 SAMPLE=200 BASE=${TMPDIR:-/tmp} QUICK=''
FAILRATE=0
while getopts n:w:l:o:f:s:d:qh opt; do
	case $opt in
	n) TASKS=$OPTARG ;;
	w) WORKERS=$OPTARG ;;
	l) LAT=$OPTARG ;;
	f) FAILRATE=$OPTARG ;;
	o) ORDERS=$OPTARG ;;
	s) SAMPLE=$OPTARG ;;
	d) BASE=$OPTARG ;;
	q) QUICK=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
if [ -n "$QUICK" ]; then
	: "${TASKS:=3000}" "${WORKERS:=4 16}"
else
	: "${TASKS:=100000}" "${WORKERS:=5 32 64}"
fi
isnum() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }
{ isnum "$TASKS" && [ "$TASKS" -ge 1 ]; } || { echo "-n: a positive number" >&2; exit 2; }
{ isnum "$LAT" && [ "$LAT" -ge 1 ]; } || { echo "-l: a positive number of ms" >&2; exit 2; }
{ isnum "$SAMPLE" && [ "$SAMPLE" -ge 1 ]; } || { echo "-s: a positive number" >&2; exit 2; }
for w in $WORKERS; do
	{ isnum "$w" && [ "$w" -ge 1 ] && [ "$w" -le 256 ]; } || { echo "-w: worker counts 1..256" >&2; exit 2; }
done
[ -n "$WORKERS" ] || usage
: "${ORDERS:=$TASKS}"
{ isnum "$ORDERS" && [ "$ORDERS" -ge 1 ] && [ "$ORDERS" -le "$TASKS" ]; } ||
	{ echo "-o: 1..TASKS orders" >&2; exit 2; }

. "$(dirname "$0")/bench-lib.sh"
need_built "$M2W" "$QCTL" "$FAKE"
need_cmds jq curl awk
[ -r /proc/self/status ] || { echo "/proc is needed for the RSS" >&2; exit 1; }

TOKEN=bench-token
T=$(mktemp -d "$BASE/m2w-e2e.XXXXXX") || exit 1
FAKE_PID=
DPID=

cleanup() {
	if [ -n "$DPID" ]; then
		kill -TERM "$DPID" 2>/dev/null
		i=0
		while kill -0 "$DPID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	if [ -n "$FAKE_PID" ]; then
		kill -TERM "$FAKE_PID" 2>/dev/null
		wait "$FAKE_PID" 2>/dev/null
	fi
	DPID='' FAKE_PID=''
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cputime PID: user + system CPU seconds the process has used so far
cputime() {
	awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo "?"
}

# --- the tasks, generated once for every run: task k on order
# ((k-1) mod ORDERS) + 1, so neighbours in the queue are on different orders
seq 1 "$TASKS" | awk -v n="$ORDERS" '{ printf "{\"order\":\"%d\",\"track\":\"BENCH%d\",\"carrier\":\"ups\"}\n", 1000000000 + ($1 - 1) % n + 1, $1 }' >"$T/tasks.ndjson"

fstype=$(stat -f -c %T "$T" 2>/dev/null || echo "?")
echo "m2worker end-to-end benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "machine: $(uname -srm), $(nproc) CPUs; store on $fstype ($BASE)"
if [ "$ORDERS" -eq "$TASKS" ]; then per="one per order"; else per="over $ORDERS orders"; fi
echo "tracking tasks: $TASKS, $per; fake latency: $LAT ms per API call; 503s: $FAILRATE; workers: $WORKERS"
echo

# run_one W: one run; prints its numbers and appends a table row to $T/rows
run_one() {
	W=$1
	R="$T/w$W"
	mkdir "$R" || return 1

	# the fake Magento: one order per task
	"$FAKE" --port 0 --port-file "$R/port" --orders "$ORDERS" --products 100 \
		--token "$TOKEN" --latency-ms "$LAT" --fail-rate "$FAILRATE" \
		>"$R/fake.log" 2>&1 &
	FAKE_PID=$!
	t=$(now_ms)
	i=0
	while [ ! -s "$R/port" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i + 1)); done
	[ -s "$R/port" ] || { say "fake did not start:"; cat "$R/fake.log" >&2; return 1; }
	F="http://127.0.0.1:$(cat "$R/port")"
	say "[W=$W] fake with $ORDERS orders up in $(($(now_ms) - t)) ms"

	cat >"$R/m2w.conf" <<EOF
[store]
path = $R/store
[magento]
base_url = $F
auth = token
token = $TOKEN
[workers]
threads = $W
[log]
level = warn
file = $R/m2w.log
[tracking]
lease = 10m
EOF
	"$M2W" -c "$R/m2w.conf" --check-config >"$R/check.out" 2>&1 ||
		{ say "config refused:"; cat "$R/check.out" >&2; return 1; }

	# enqueue before the daemon starts (not part of the drain time)
	t=$(now_ms)
	"$QCTL" -d "$R/store" enqueue --type tracking --format ndjson "$T/tasks.ndjson" >"$R/enq.out" 2>&1 ||
		{ say "enqueue failed:"; tail -5 "$R/enq.out" >&2; return 1; }
	t=$(($(now_ms) - t))
	echo "W=$W enqueue: $(cat "$R/enq.out") in $(calc "$t / 1000" %.2f) s ($(calc "$TASKS * 1000 / ($t > 0 ? $t : 1)" %.0f) tasks/s, durable)"

	# the daemon, timed until nothing is pending
	t0=$(now_ms)
	"$M2W" -c "$R/m2w.conf" >"$R/m2w.out" 2>&1 &
	DPID=$!
	maxrss=0 maxanon=0 lastdone=-1 lastchange=$t0 status=ok
	while :; do
		sleep 0.2
		if ! kill -0 "$DPID" 2>/dev/null; then
			status="daemon exited"; break
		fi
		set -- $(awk '/^(VmRSS|RssAnon):/ { printf "%s ", $2 }' "/proc/$DPID/status" 2>/dev/null)
		[ $# -eq 2 ] && [ "$1" -gt "$maxrss" ] && maxrss=$1
		[ $# -eq 2 ] && [ "$2" -gt "$maxanon" ] && maxanon=$2
		"$QCTL" -d "$R/store" stats --json >"$R/stats.json" 2>/dev/null || continue
		set -- $(jq -r '.totals | "\(.ready + .scheduled + .leased + .waiting) \(.done) \(.dead)"' "$R/stats.json")
		pend=$1 ndone=$2
		[ "$pend" = 0 ] && break
		now=$(now_ms)
		if [ "$ndone" != "$lastdone" ]; then
			lastdone=$ndone lastchange=$now
		elif [ $((now - lastchange)) -gt 60000 ]; then
			status="stalled (no task done for 60 s)"; break
		fi
	done
	t1=$(now_ms)
	secs=$(calc "($t1 - $t0) / 1000" %.2f)
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null)
	: "${hwm:=$maxrss}"
	rssfile=$(awk '/^RssFile:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null)
	dcpu=$(cputime "$DPID") fcpu=$(cputime "$FAKE_PID")
	if kill -0 "$DPID" 2>/dev/null; then
		kill -TERM "$DPID"
		wait "$DPID"
		rc=$?
		[ $rc -eq 0 ] || say "[W=$W] daemon exit status $rc"
	else
		wait "$DPID"
		say "[W=$W] daemon exited early with status $?:"
		tail -n 20 "$R/m2w.out" "$R/m2w.log" >&2 2>/dev/null
	fi
	DPID=
	[ "$status" = ok ] || say "[W=$W] $status: $(jq -c .totals "$R/stats.json" 2>/dev/null)"
	"$QCTL" -d "$R/store" stats --json >"$R/stats.json"
	ndone=$(jq .totals.done "$R/stats.json")
	ndead=$(jq .totals.dead "$R/stats.json")

	# what reached Magento
	curl -s "$F/_fake/state" >"$R/state.json"
	kill -TERM "$FAKE_PID" 2>/dev/null
	wait "$FAKE_PID" 2>/dev/null
	FAKE_PID=
	calls=$(jq .total_requests "$R/state.json")
	not2xx=$(jq '[.requests[] | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0' "$R/state.json")
	once=$(jq --argjson n "$TASKS" '
		if (.tracks | length) == $n
		   and ([.tracks[] | select(. != 1)] | length) == 0
		   and ([.shipments_per_order[] | select(. != 1)] | length) == 0
		then "yes" else "no" end' -r "$R/state.json")

	# attempt durations of SAMPLE tasks spread over the run (a fresh store
	# numbers the tasks 1..TASKS in file order)
	n=$SAMPLE
	[ "$n" -gt "$TASKS" ] && n=$TASKS
	: >"$R/durations"
	: >"$R/unsampled"
	i=0
	while [ $i -lt "$n" ]; do
		if [ "$n" -eq 1 ]; then id=1; else id=$((1 + i * (TASKS - 1) / (n - 1))); fi
		if "$QCTL" -d "$R/store" show "$id" --json >"$R/show.json" 2>"$R/show.err" &&
			d=$(jq -e 'select(.state == "done") | [.history[] | select(.outcome == "ok")][-1].duration_ms' "$R/show.json" 2>/dev/null); then
			echo "$d" >>"$R/durations"
		else
			echo "task $id: $(cat "$R/show.err") $(jq -c '{state, attempts, history}' "$R/show.json" 2>/dev/null)" >>"$R/unsampled"
		fi
		i=$((i + 1))
	done
	[ -s "$R/unsampled" ] && say "[W=$W] not sampled ($(wc -l <"$R/unsampled")): $(head -n 3 "$R/unsampled")"
	set -- $(sort -n "$R/durations" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "- - 0"; exit }
		i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
		i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
		print v[i50], v[i99], NR }')
	p50=$1 p99=$2 nsampled=$3

	tps=$(calc "$TASKS / $secs" %.0f)
	cpt=$(calc "$calls / $TASKS" %.2f)
	ceil=$(calc "$W / (($calls / $TASKS) * $LAT / 1000)" %.0f)
	pct=$(calc "100 * ($TASKS / $secs) / ($W / (($calls / $TASKS) * $LAT / 1000))" %.1f)
	rssm=$(calc "$hwm / 1024" %.1f)
	maxm=$(calc "$maxrss / 1024" %.1f)
	anonm=$(calc "$maxanon / 1024" %.1f)
	filem=$(calc "${rssfile:-0} / 1024" %.1f)
	printf '%7s %7s %8s %8s %10s %8s %9s %7s %7s %8s %9s %6s\n' \
		"$W" "$TASKS" "$secs" "$tps" "$cpt" "$ceil" "$pct" "$p50" "$p99" "$rssm" "$anonm" "$once" >>"$T/rows"
	echo "W=$W drained in $secs s: $tps tasks/s, $cpt calls/task, $pct% of the ceiling $ceil; p50 $p50 ms, p99 $p99 ms ($nsampled sampled); RSS peak $rssm MiB (polled max $maxm, anonymous at most $anonm, file-backed at the end $filem); CPU: daemon $dcpu s, fake $fcpu s; done $ndone, dead $ndead, non-2xx answers $not2xx; exactly once: $once"
	[ "$status" = ok ] || echo "W=$W NOTE: $status"
	[ -n "${M2W_BENCH_KEEP:-}" ] && cp -r "$R" "${M2W_BENCH_KEEP}-w$W"
	rm -rf "$R"
}

: >"$T/rows"
for w in $WORKERS; do
	run_one "$w" || { echo "W=$w: could not run (see above)"; exit 1; }
done

echo
printf '%7s %7s %8s %8s %10s %8s %9s %7s %7s %8s %9s %6s\n' \
	workers tasks seconds tasks/s calls/task ceiling "%ceiling" "p50 ms" "p99 ms" "RSS MiB" "anon MiB" once
cat "$T/rows"
echo
# targets at the largest worker count measured
set -- $(sort -n "$T/rows" | tail -n 1 | awk '{ print $1, $7, $10, $11 }')
W=$1 pct=$2 rssm=$3 anonm=$4
echo "targets at the largest worker count ($W):"
echo "  >= 85% of the ceiling: $pct% $(awk -v p="$pct" 'BEGIN { print (p >= 85 ? "ok" : "below") }')"
echo "  RSS <= 20 MiB: $rssm MiB $(awk -v r="$rssm" 'BEGIN { print (r <= 20 ? "ok" : "above") }') (anonymous $anonm MiB; the rest is the store's mapped pages)"
