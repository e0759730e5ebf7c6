#!/bin/bash
# amqp.sh - the AMQP benchmarks, against a private rabbitmq-server started
# here (as the tests do). Prints numbers; never passes or fails on them.
#
# Usage: tools/bench/amqp.sh [-n TASKS] [-e TASKS] [-l MS] [-d DIR] [-q]
#
#   -n TASKS  ingest: tasks into one daemon (default 100000; quick 20000)
#   -e TASKS  end to end: tracking tasks (default 12000; quick 3000)
#   -l MS     end to end: fake Magento latency per call (default 20)
#   -d DIR    temporary directory under DIR (default: the current one, the
#             real disk rather than a tmpfs /tmp)
#   -q        quick mode
#
# 1. Ingest, durable (every commit fsync'd), workers kept away by an open
#    breaker as in ingest.sh:
#      amqp        TASKS persistent messages (one tracking task each)
#                  published with confirms into the queue first, then the
#                  daemon started: timed from its start until the store
#                  holds them all (prefetch 1000: up to 1000 messages a
#                  commit and one ack)
#      http batch  the same count by POST /v1/tasks, 100 items a request,
#                  4 clients (tools/bench/push), on a fresh store
# 2. End to end: TASKS tracking tasks (4 per order) published first through
#    a consistent-hash exchange into 6 partition queues (quorum, single
#    active consumer), then 1, 2 or 3 daemons of 16 workers each started
#    against one fake Magento at MS ms a call: timed from the start until
#    every task is done; tasks/s, the ratio to 1 daemon, and the CPU
#    seconds of the daemons, the broker and the fake over the run (on a
#    machine of `nproc` CPUs: their sum over the wall time says how busy
#    it was).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench-lib.sh"
need_built "$M2W" "$QCTL" "$FAKE" "$PUSH" "$top/tools/bench/amqp-pub"
need_cmds jq curl awk

N=100000 E=12000 LAT=20 DIR=. QUICK=
while getopts n:e:l:d:q o; do
	case $o in
	n) N=$OPTARG ;;
	e) E=$OPTARG ;;
	l) LAT=$OPTARG ;;
	d) DIR=$OPTARG ;;
	q) QUICK=1; N=20000; E=3000 ;;
	*) echo "usage: $0 [-n TASKS] [-e TASKS] [-l MS] [-d DIR] [-q]" >&2; exit 2 ;;
	esac
done


# what tests/rabbit-lib.sh needs of tests/daemon-lib.sh
T=$(mktemp -d "$DIR/m2w-bench-amqp.XXXXXX") || exit 1
T=$(cd "$T" && pwd)
top_builddir=$top
lib_pick_port() { "$PUSH" freeport; }
DAEMONS=''
lib_cleanup() {
	for p in $DAEMONS ${FPID:-}; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
. "$here/../../tests/rabbit-lib.sh"
say "starting rabbitmq-server..."
rabbit_start rabbitmq_consistent_hash_exchange
BEAM=$(pgrep -f "beam.smp.*-home $B .*-s rabbit" | head -n 1)
PUB="$top/tools/bench/amqp-pub"
TOKEN=t

tracks() { # N PREFIX: tracking payloads, 4 per order
	awk -v n="$1" -v p="$2" -v o=$(($1 / 4 > 0 ? $1 / 4 : 1)) 'BEGIN {
		for (k = 1; k <= n; k++)
			printf "{\"order\":\"%d\",\"track\":\"%s%08d\",\"carrier\":\"ups\"}\n", 1000000000 + (k - 1) % o + 1, p, k
	}'
}
# conf DIR PORT MAGENTO EXTRA...: a daemon's config
conf() {
	_d=$1 _p=$2 _m=$3
	shift 3
	cat >"$_d.conf" <<EOF
[store]
path = $_d
[magento]
base_url = $_m
auth = token
token = test-token
[log]
level = warn
file = $_d.log
[http]
enabled = yes
port = $_p
tokens = $TOKEN
connections = 64
$(printf '%s\n' "$@")
EOF
}
up() { # PORT: until /healthz answers
	for _ in $(seq 200); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz")" = 200 ] && return 0
		sleep 0.05
	done
	die "a daemon did not start"
}
count() { # STORE JQ: a number from qctl stats
	"$QCTL" -d "$1" stats --json 2>/dev/null | jq "$2"
}

echo "m2worker AMQP benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "machine: $(uname -srm), $(nproc) CPUs; stores on $(stat -f -c %T "$T") ($T)"
echo "broker: rabbitmq-server $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo '?'), private node"
echo

NOWORK="[workers]
threads = 1
[breaker]
failures = 1
cooldown = 1h"

# --- 1. ingest
say "[ingest amqp] publishing $N messages..."
tracks "$N" A | "$PUB" -u "$URL" -q bench.in >"$T/pub.out" || die "publish failed"
pubrate=$(sed -n 's/.* \([0-9]*\) msg\/s$/\1/p' "$T/pub.out")
HP=$(lib_pick_port)
conf "$T/in" "$HP" "http://127.0.0.1:9" "$NOWORK" "[amqp \"in\"]
url = $URL
queue = bench.in
type = tracking
prefetch = 1000
window = 0"
t0=$(now_ms)
"$M2W" -c "$T/in.conf" & D=$!
DAEMONS=$D
while [ "$(count "$T/in" '.totals | add' 2>/dev/null || echo 0)" != "$N" ]; do
	kill -0 "$D" 2>/dev/null || die "the daemon exited: $(tail -n 5 "$T/in.log")"
	sleep 0.05
done
t1=$(now_ms)
acpu=$(cpu "$D")
kill -TERM "$D"; wait "$D"
asecs=$(calc "($t1 - $t0) / 1000" %.2f)
arate=$(calc "$N / $asecs" %.0f)
say "[ingest http] pushing $N tasks, 100 a request, 4 clients..."
HP=$(lib_pick_port)
conf "$T/hb" "$HP" "http://127.0.0.1:9" "$NOWORK"
"$M2W" -c "$T/hb.conf" & D=$!
DAEMONS=$D
up "$HP"
c0=$(cpu "$D")
out=$("$PUSH" http -p "$HP" -t "$TOKEN" -c 4 -b 100 -n "$N" -o $((N / 4))) || die "push failed"
hcpu=$(calc "$(cpu "$D") - $c0" %.2f)
kill -TERM "$D"; wait "$D"
hsecs=$(field seconds "$out")
hrate=$(calc "$N / $hsecs" %.0f)
rm -rf "$T/in" "$T/hb"

# --- 2. end to end with 1, 2, 3 daemons
printf '' | "$PUB" -u "$URL" -e bench.orders -x x-consistent-hash -r x >/dev/null || die "exchange"
FPORT=$(lib_pick_port)
e2e() { # DAEMONS: sets erate, ecpu line
	nd=$1
	"$FAKE" --port "$FPORT" --token test-token --orders $((E / 4)) --latency-ms "$LAT" >"$T/fake.log" 2>&1 &
	FPID=$!
	sleep 0.3
	DAEMONS=''
	for d in $(seq "$nd"); do
		extra=''
		for p in 0 1 2 3 4 5; do
			sb=0s
			[ $((p % nd)) -eq $((d - 1)) ] || sb=2s
			extra="$extra
[amqp \"p$p\"]
url = $URL
queue = bench.p$p
arguments = x-queue-type=quorum, x-single-active-consumer=true
exchange = bench.orders
routing_keys = 1
type = tracking
prefetch = 200
window = 1000
standby = $sb"
		done
		rm -rf "$T/e$d"
		conf "$T/e$d" "$(lib_pick_port)" "http://127.0.0.1:$FPORT" "[workers]
threads = 16" "$extra"
	done
	# the partitions exist (declared by a first daemon run), then the tasks
	if [ ! -e "$T/declared" ]; then
		"$M2W" -c "$T/e1.conf" & D=$!
		sleep 2; kill -TERM "$D"; wait "$D"; rm -rf "$T/e1"; : >"$T/declared"
	fi
	tracks "$E" "E$nd-" | "$PUB" -u "$URL" -e bench.orders -K order >/dev/null || die "publish"
	b0=$(cpu "$BEAM") f0=$(cpu "$FPID")
	t0=$(now_ms)
	for d in $(seq "$nd"); do
		"$M2W" -c "$T/e$d.conf" &
		DAEMONS="$DAEMONS $!"
	done
	while :; do
		s=0
		for d in $(seq "$nd"); do
			v=$(count "$T/e$d" .totals.done 2>/dev/null)
			s=$((s + ${v:-0}))
		done
		[ "$s" -ge "$E" ] && break
		[ $(($(now_ms) - t0)) -gt 900000 ] && die "e2e $nd: $s of $E after 15 min"
		sleep 0.1
	done
	t1=$(now_ms)
	dc=0
	for p in $DAEMONS; do dc=$(calc "$dc + $(cpu "$p")" %.2f); done
	bc_=$(calc "$(cpu "$BEAM") - $b0" %.2f) fc=$(calc "$(cpu "$FPID") - $f0" %.2f)
	for p in $DAEMONS; do kill -TERM "$p"; wait "$p"; done
	kill "$FPID"; wait "$FPID" 2>/dev/null; FPID=
	esecs=$(calc "($t1 - $t0) / 1000" %.2f)
	erate=$(calc "$E / $esecs" %.0f)
	busy=$(calc "($dc + $bc_ + $fc) / $esecs / $(nproc) * 100" %.0f)
	eline=$(printf '%-10s %8s %8s %9s %10s %10s %8s %6s%%' "$nd daemon" "$E" "$esecs" "$erate" "$dc" "$bc_" "$fc" "$busy")
}
rows=''
base=''
for nd in 1 2 3; do
	say "[e2e] $nd daemon(s), $E tasks, $LAT ms a call..."
	e2e "$nd"
	[ -z "$base" ] && base=$erate
	rows="$rows$eline   x$(calc "$erate / $base" %.2f)
"
done

echo "ingest (durable), $N tracking tasks into one daemon"
printf '  %-28s %9s s %9s tasks/s   daemon CPU %s s\n' "amqp (prefetch 1000)" "$asecs" "$arate" "$acpu"
printf '  %-28s %9s s %9s tasks/s   daemon CPU %s s\n' "http batch (100 x 4 clients)" "$hsecs" "$hrate" "$hcpu"
echo "  amqp / http batch: x$(calc "$arate / $hrate" %.2f); the publisher alone ran at $pubrate msg/s (with confirms)"
echo
echo "end to end: $E tracking tasks, 4 per order, 6 partitions, 16 workers a daemon, $LAT ms a Magento call"
printf '%-10s %8s %8s %9s %10s %10s %8s %7s   %s\n' daemons tasks seconds tasks/s "cpu:m2w s" "broker s" "fake s" "busy" "vs 1"
printf '%s' "$rows"
echo "(busy: the CPU seconds of the daemons, the broker and the fake over the wall time, of $(nproc) CPUs;"
echo " the ceiling at $LAT ms a call and 3 calls a task is $(calc "16 * 1000 / (3 * $LAT)" %.0f) tasks/s a daemon)"
