#!/bin/sh
# amqp-many.sh - many daemons, one broker. Three daemons share six
# partition queues fed by a consistent-hash exchange keyed by the order
# (rabbitmq_consistent_hash_exchange, shipped with RabbitMQ); each queue has
# one active consumer at a time (x-single-active-consumer), so the tasks
# of one order run on one daemon at a time, and a daemon's death hands its
# partitions to the others. A daemon that starts again hands back what it
# had taken and not finished (handback = yes), so that work runs on the
# partition's new owner, in turn, not beside it.
#
#   AMQP_MANY_TASKS tracking tasks (default 6,000; 20,000 for the long run)
#   over a quarter as many orders, published with confirms; 3 daemons of
#   16 workers against one fake Magento at AMQP_MANY_LATENCY (10) ms a call
#   (default 2); one daemon SIGKILLed 5 times mid-flow and started again;
#   then the broker stopped for 30 s (AMQP_MANY_OUTAGE) and started again.
#
# Checks: every task done exactly once across the stores and none dead;
# every track once in Magento; one shipment per order (no order shipped
# twice); every result event published (one event id per ended task, each
# task key once), the outboxes empty; the partition queues empty; qctl
# check passes on every store; no task dead through the 30 s outage.
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
. "$top_srcdir/tests/daemon-lib.sh"
lib_setup amqp-many
. "$top_srcdir/tests/rabbit-lib.sh"
rabbit_start rabbitmq_consistent_hash_exchange

N=${AMQP_MANY_TASKS:-6000}
ORDERS=$((N / 4))
LAT=${AMQP_MANY_LATENCY:-10}
OUT=${AMQP_MANY_OUTAGE:-30}
[ "$OUT" -ge 4 ] || OUT=4
PARTS=6
lib_fake --orders "$ORDERS" --latency-ms "$LAT"

printf '' | "$PUB" -u "$URL" -e m2w.orders -x x-consistent-hash -r x >/dev/null ||
	fail "declare the consistent-hash exchange"
printf '' | "$PUB" -u "$URL" -q events >/dev/null || fail "declare events"
"$PUB" -u "$URL" -e m2w.events -x topic -q events -b 'm2w.events:#' || fail "bind events"

# daemon i: its own store, log and HTTP port; every partition section
for d in 1 2 3; do
	eval "HP$d=$(lib_pick_port)"
	eval "hp=\$HP$d"
	cat >"$T/d$d.conf" <<CONF
[store]
path = $T/s$d
[magento]
base_url = $F
auth = token
token = test-token
[workers]
threads = 16
[tracking]
lease = 5s
backoff_base = 200ms
backoff_cap = 1s
[log]
file = $T/d$d.log
level = info
[http]
enabled = yes
port = $hp
tokens = t
[events]
url = $URL
exchange = m2w.events
CONF
	p=0
	while [ $p -lt $PARTS ]; do
		# its own partitions (p % 3 == d - 1) at once, the others as
		# the standby: so each queue's active consumer is its owner
		sb=0s; [ $((p % 3)) -eq $((d - 1)) ] || sb=3s
		cat >>"$T/d$d.conf" <<CONF
[amqp "p$p"]
url = $URL
queue = m2w.p$p
arguments = x-queue-type=quorum, x-single-active-consumer=true
exchange = m2w.orders
routing_keys = 1
type = tracking
prefetch = 50
window = 300
handback = yes
standby = $sb
CONF
		p=$((p + 1))
	done
done
run 0 "$M2W" -c "$T/d1.conf" --check-config

start_d() { "$M2W" -c "$T/d$1.conf" & eval "D$1=\$!"; DPIDS="${D1:-} ${D2:-} ${D3:-}"; }
ups() { grep -c 'amqp.up' "$T/d$1.log" 2>/dev/null || echo 0; }
stats_sum() { # JQ-EXPR over the three stores' stats, summed
	_t=0
	for _d in 1 2 3; do
		_v=$("$QCTL" -d "$T/s$_d" stats --json 2>/dev/null | jq "$1")
		_t=$((_t + ${_v:-0}))
	done
	echo $_t
}

say "3 daemons, $PARTS partitions, $N tasks over $ORDERS orders"
start_d 1; start_d 2; start_d 3
for d in 1 2 3; do
	i=0; while [ "$(ups $d)" -lt $PARTS ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
done
seq 1 "$N" | awk -v o="$ORDERS" '{ printf "{\"order\":\"%d\",\"track\":\"AMQ%07d\",\"carrier\":\"ups\"}\n", 1000000000 + ($1 % o) + 1, $1 }' >"$T/tracks"
t0=$(date +%s)
(split -n l/4 "$T/tracks" "$T/chunk."
 for c in "$T"/chunk.*; do
	"$PUB" -u "$URL" -e m2w.orders -K order -i "$(basename "$c")" <"$c" >/dev/null ||
		echo "publish $c failed" >>"$T/pub.err"
	sleep 0.5
 done) &
PUBPID=$!

say "daemon 2 SIGKILLed 5 times and started again"
unfinished() { "$QCTL" -d "$T/s$1" stats --json 2>/dev/null |
	jq '.totals | .ready + .scheduled + .leased + .waiting' 2>/dev/null || echo 0; }
for k in 1 2 3 4 5; do
	sleep 0.$((5 + k))
	# killed while it holds unfinished work, which is what the hand-back
	# is for (tracking's batches drain a daemon's share fast: a kill at
	# a fixed time often found nothing left)
	i=0
	while [ "$(unfinished 2)" = 0 ] && [ $i -lt 150 ]; do
		sleep 0.02; i=$((i + 1))
	done
	kill -9 "$D2"; wait "$D2" 2>/dev/null
	start_d 2
done
wait "$PUBPID"
[ -s "$T/pub.err" ] && fail "$(cat "$T/pub.err")"
echo "handed back after the kills: $(grep 'amqp.handback' "$T/d2.log" | sed 's/.*handed_back=\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }') tasks in $(grep -c 'amqp.handback' "$T/d2.log") hand-backs"

say "the broker gone for $OUT s"
ctl stop_app >/dev/null 2>&1
sleep 3
curl -s "http://127.0.0.1:$HP1/healthz" >"$T/out"
has "amqp p0: down"
has "events: down"
sleep $((OUT - 3))
waiting=$(stats_sum .events_waiting)
echo "results waiting in the outboxes during the outage: $waiting"
ctl start_app >/dev/null 2>&1

i=0
while :; do
	done_=$(stats_sum '.totals.done')
	pend=$(stats_sum '.totals | .ready + .scheduled + .leased + .waiting')
	left=0; p=0
	while [ $p -lt $PARTS ]; do l=$(queue_len m2w.p$p); left=$((left + ${l:-0})); p=$((p + 1)); done
	[ "$done_" -ge "$N" ] && [ "$pend" = 0 ] && [ "$left" = 0 ] &&
		[ "$(stats_sum .events_waiting)" = 0 ] && break
	i=$((i + 1))
	[ $i -gt 300 ] && { fail "after 150 s: done $done_ of $N, $pend pending, $left in the partitions"; break; }
	sleep 0.5
done
echo "all done in $(( $(date +%s) - t0 )) s (with the $OUT s outage)"

is "$(stats_sum .totals.done)" "$N" "every task done once across the stores"
is "$(stats_sum .totals.dead)" 0 "none dead"
for d in 1 2 3; do
	echo "daemon $d: $("$QCTL" -d "$T/s$d" stats --json | jq .totals.done) done"
	run 0 "$QCTL" -d "$T/s$d" check
done
state >"$T/state.json"
is "$(jq '[.tracks | keys[] | select(startswith("AMQ"))] | length' "$T/state.json")" "$N" "every track in Magento"
is "$(jq '[.tracks | to_entries[] | select(.value != 1)] | length' "$T/state.json")" 0 "no track twice"
is "$(jq '[.shipments_per_order | to_entries[] | select(.value != 1)] | length' "$T/state.json")" 0 "no order shipped twice"
"$PUB" -u "$URL" -q events -D >"$T/events" 2>/dev/null || fail "drain events"
is "$(cut -f1 "$T/events" | sort -u | wc -l)" "$N" "one event id per ended task"
is "$(cut -f3 "$T/events" | jq -r 'select(.state == "done") | .key' | sort -u | wc -l)" "$N" "a done event for every task key"
echo "events: $(wc -l <"$T/events") messages, $(cut -f1 "$T/events" | sort | uniq -d | wc -l) published twice"
grep -q 'amqp.handback' "$T/d2.log" || fail "no hand-back logged after the kills"

for d in 1 3; do eval "kill -TERM \$D$d; wait \$D$d"; done
kill -TERM "$D2"; wait "$D2"
DPIDS=
echo "amqp-many.sh: $fails failed"
[ "$fails" -eq 0 ]
