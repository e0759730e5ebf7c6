#!/bin/sh
# amqp.sh - the AMQP source against a real RabbitMQ: the test starts its
# own rabbitmq-server (the Debian package) on 127.0.0.1 with a temporary
# base directory, its own node name and free ports, and the fake Magento.
#
#   1. 1,000 tracking messages (publisher confirms, message ids) and 5 bad
#      ones: every good one one task, done, once in Magento; the bad ones
#      rejected to the dead-letter queue with the reason logged.
#   2. 1,500 more while the daemon is SIGKILLed 4 times: nothing lost,
#      nothing twice (every track once in Magento), `qctl check` passes.
#   3. A stock message published twice with the same message_id, through
#      the exchange the queue is bound to (two routing keys): one task.
#   4. The broker restarted under the daemon: it reconnects (one amqp.down,
#      one amqp.up) and takes what is published after.
#   5. The intake window: with tracking paused in the store, the daemon
#      takes 2,000 messages only up to its window (400 tasks, plus one
#      batch), pauses its consumer (/metrics, /healthz) and leaves the rest
#      with the broker; resumed, all go through once.
#   6. Result events ([events]): every task that ended, published once to
#      the exchange (a queue bound to it counts them by event id), nothing
#      left in the outbox; the broker restart of 4 did not lose one.
#   7. A store of 1 MiB filled by 5,000 messages: the batch in hand is held
#      (amqp.hold), the rest stays with the broker, nothing is rejected;
#      purges make room and every one goes in, once.
#
# Skipped (77) only when m2worker is built without AMQP, rabbitmq-server is
# not installed, or the broker does not start here.
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
. "$top_srcdir/tests/daemon-lib.sh"
lib_setup amqp
. "$top_srcdir/tests/rabbit-lib.sh"
rabbit_start

lib_fake --orders 2000 --latency-ms 0
# the dead-letter queue: rejected messages go to it by the default exchange
printf '' | "$PUB" -u "$URL" -q dead >/dev/null || fail "declare dead"
# the result events' exchange and a queue that keeps them all
printf '' | "$PUB" -u "$URL" -q events >/dev/null || fail "declare events"
"$PUB" -u "$URL" -e m2w.events -x topic -q events -b 'm2w.events:#' || fail "bind events"

HP=$(lib_pick_port)
cat >"$T/m2w.conf" <<EOF
[store]
path = $S
[magento]
base_url = $F
auth = token
token = test-token
[workers]
threads = 8
[tracking]
lease = 3s
backoff_base = 200ms
backoff_cap = 1s
[log]
file = $T/m2w.log
level = debug
[http]
enabled = yes
port = $HP
tokens = t
[amqp "orders"]
url = $URL
queue = m2w.tracking
type = tracking
arguments = x-dead-letter-exchange=, x-dead-letter-routing-key=dead
prefetch = 500
window = 400
[amqp "stock"]
url = $URL
queue = m2w.stock
exchange = amq.direct
routing_keys = stock.levels, stock.more
type = stock
[events]
url = $URL
exchange = m2w.events
EOF
run 0 "$M2W" -c "$T/m2w.conf" --check-config

# tracking payloads i in [FROM, FROM + N): order i % 2000 + 1
tracks() { seq "$1" $(($1 + $2 - 1)) | awk '{ printf "{\"order\":\"%d\",\"track\":\"AMQ%07d\",\"carrier\":\"ups\"}\n", 1000000000 + ($1 % 2000) + 1, $1 }'; }
start() { "$M2W" -c "$T/m2w.conf" & DPID=$!; }
wait_tasks() { # N SECS: until the store holds N tasks, all finished
	_i=0
	while :; do
		_s=$(lib_q stats --json 2>/dev/null | jq -r '.totals | "\(.done + .dead + .superseded) \(.ready + .scheduled + .leased + .waiting)"')
		[ "${_s%% *}" = "$1" ] && [ "${_s#* }" = 0 ] && return 0
		_i=$((_i + 1))
		[ $_i -gt $(($2 * 5)) ] && { fail "after $2 s: finished/pending $_s, want $1"; return 1; }
		sleep 0.2
	done
}

say "1,000 good messages and 5 bad ones"
start
i=0; while ! grep -q 'amqp.up.*amqp=orders' "$T/m2w.log" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
tracks 1 1000 | "$PUB" -u "$URL" -q m2w.tracking -i a >"$T/pub1" || fail "publish"
{
	echo '{"order":"1000000001","track":'
	echo '{"order":"1000000002","track":"X1","carrier":"ups","colour":"red"}'
	echo '{"order":"1000000003","carrier":"ups"}'
	echo '[]x'
	echo '{"order":"1000000004","track":"","carrier":"ups"}'
} | "$PUB" -u "$URL" -q m2w.tracking -i bad >/dev/null || fail "publish bad"
wait_tasks 1000 60
i=0; while [ "$(queue_len dead)" != 5 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
is "$(queue_len dead)" 5 "bad messages dead-lettered"
is "$(grep -c 'amqp.reject' "$T/m2w.log")" 5 "each rejection logged"
grep 'amqp.reject' "$T/m2w.log" | grep -q 'unknown key' || fail "the reason is logged"
is "$(queue_len m2w.tracking)" 0 "nothing left in the queue"
curl -s "http://127.0.0.1:$HP/healthz" >"$T/out"
has "amqp orders: up"
curl -s "http://127.0.0.1:$HP/metrics" >"$T/out"
has 'm2worker_amqp_up{amqp="orders"} 1'
has 'm2worker_amqp_messages_total{amqp="orders",outcome="rejected"} 5'
has 'm2worker_amqp_messages_total{amqp="orders",outcome="accepted"} 1000'

say "1,500 more, the daemon SIGKILLed 4 times"
# published in small runs meanwhile, so deliveries are in flight
(for f in 1001 1501 2001; do
	tracks $f 500 | "$PUB" -u "$URL" -q m2w.tracking -i b$f >/dev/null ||
		echo "publish $f failed" >>"$T/pub.err"
	sleep 0.3
done) &
PPID_=$!
for k in 1 2 3 4; do
	sleep 0.$((3 + k))
	kill -9 "$DPID"; wait "$DPID" 2>/dev/null
	start
done
wait "$PPID_"
[ -s "$T/pub.err" ] && fail "$(cat "$T/pub.err")"
wait_tasks 2500 120
run 0 "$QCTL" -d "$S" check
echo "redelivered after the kills, found duplicates: $(grep -c 'amqp.up.*amqp=orders' "$T/m2w.log") connections"
state >"$T/state.json"
is "$(jq '[.tracks | to_entries[] | select(.key | startswith("AMQ"))] | length' "$T/state.json")" 2500 "every track in Magento"
is "$(jq '[.tracks | to_entries[] | select(.value != 1)] | length' "$T/state.json")" 0 "no track twice"
is "$(lib_q stats --json | jq -r .totals.dead)" 0 "none dead"

say "the same stock message twice (one message_id)"
# through the exchange the section binds its queue to
echo '{"sku":"SKU-1","qty":7}' | "$PUB" -u "$URL" -e amq.direct -r stock.levels -i same >/dev/null
echo '{"sku":"SKU-1","qty":7}' | "$PUB" -u "$URL" -e amq.direct -r stock.more -i same >/dev/null
wait_tasks 2501 30
is "$(lib_q stats --json | jq '.types[] | select(.type == "stock") | .counts | add')" 1 "one stock task"

say "the broker restarted under the daemon"
ctl stop_app >/dev/null 2>&1; sleep 1; ctl start_app >/dev/null 2>&1
i=0; while [ "$(grep -c 'amqp.up.*amqp=orders' "$T/m2w.log")" -lt 6 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
tracks 2501 100 | "$PUB" -u "$URL" -q m2w.tracking -i c >/dev/null || fail "publish after the restart"
wait_tasks 2601 60
grep -q 'amqp.down.*amqp=orders' "$T/m2w.log" || fail "the lost connection is logged"
curl -s "http://127.0.0.1:$HP/metrics" >"$T/out"
grep -q 'm2worker_amqp_reconnects_total{amqp="orders"} [1-9]' "$T/out" ||
	fail "no reconnect counted: $(grep amqp_reconnects "$T/out")"
curl -s "http://127.0.0.1:$HP/healthz" >"$T/out"
has "amqp orders: up"

say "the intake window: the rest waits in the broker"
run 0 "$QCTL" -d "$S" pause tracking
tracks 3001 2000 | "$PUB" -u "$URL" -q m2w.tracking -i w >/dev/null || fail "publish"
i=0; while ! curl -s "http://127.0.0.1:$HP/metrics" | grep -q 'm2worker_amqp_paused{amqp="orders"} 1' && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
sleep 1 # deliveries in flight at the cancel settle
curl -s "http://127.0.0.1:$HP/healthz" >"$T/out"
has "amqp orders: up (paused: the backlog is at the window)"
backlog=$(lib_q stats --json | jq '.totals | .ready + .scheduled + .leased + .waiting')
left=$(queue_len m2w.tracking)
echo "window 400, prefetch 500: $backlog tasks taken, $left messages left with the broker"
[ "$backlog" -ge 400 ] && [ "$backlog" -le 900 ] || fail "backlog $backlog: not within the window plus one batch"
is "$((backlog + left))" 2000 "the rest waits in the broker"
run 0 "$QCTL" -d "$S" resume tracking
wait_tasks 4601 60
is "$(queue_len m2w.tracking)" 0 "resumed: all taken"
state >"$T/state.json"
is "$(jq '[.tracks | to_entries[] | select(.value != 1)] | length' "$T/state.json")" 0 "no track twice"
grep -q 'amqp.pause.*amqp=orders' "$T/m2w.log" || fail "amqp.pause not logged"
grep -q 'amqp.resume.*amqp=orders' "$T/m2w.log" || fail "amqp.resume not logged"

say "result events: every ended task once"
i=0; while [ "$(lib_q stats --json | jq .events_waiting)" != 0 ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
is "$(lib_q stats --json | jq .events_waiting)" 0 "the outbox is empty"
lib_q stats | grep -q 'result events: 0 waiting' || fail "qctl stats says nothing of the events"
"$PUB" -u "$URL" -q events -D >"$T/events" 2>/dev/null || fail "drain events"
ended=$(lib_q stats --json | jq '.totals | .done + .dead + .superseded')
is "$(cut -f1 "$T/events" | sort -u | wc -l)" "$ended" "one event id per ended task"
is "$(cut -f3 "$T/events" | jq -r .task | sort -u | wc -l)" "$ended" "every task has its event"
echo "events: $(wc -l <"$T/events") messages, $(cut -f1 "$T/events" | sort | uniq -d | wc -l) published twice (after the kills)"
grep -q '	tracking.done	' "$T/events" || fail "routing key {type}.{state}"
grep 'AMQ0000001"' "$T/events" | cut -f3 | jq -e '.state == "done" and .result.shipment_id > 0 and .key == "tracking:1000000002:AMQ0000001"' >/dev/null ||
	fail "event of AMQ0000001: $(grep 'AMQ0000001"' "$T/events")"
curl -s "http://127.0.0.1:$HP/metrics" >"$T/out"
has 'm2worker_events_up 1'
has 'm2worker_events_waiting 0'
curl -s "http://127.0.0.1:$HP/healthz" >"$T/out"
has "events: up"

kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
is "$rc" 0 "exit on SIGTERM"

say "a full store: deliveries held, not acknowledged, none lost"
S2="$T/small"
sed -e "s|^path = $S\$|path = $S2\nmap_initial = 1MiB\nmap_max = 1MiB|" \
    -e 's|^queue = m2w.tracking$|queue = m2w.full|' \
    -e 's|^arguments = .*$||' -e 's|^window = .*$||' "$T/m2w.conf" >"$T/full.conf"
"$M2W" -c "$T/full.conf" & DPID=$!
tracks 9001 5000 | sed 's/AMQ/AMF/' | "$PUB" -u "$URL" -q m2w.full -i f >/dev/null || fail "publish"
# no intake window here: only the full store holds the intake back
i=0; while ! grep -q 'amqp.hold.*amqp=orders' "$T/m2w.log" && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
grep -q 'amqp.hold.*amqp=orders' "$T/m2w.log" || fail "no amqp.hold: the store never filled"
held=$(queue_len m2w.full)
[ "${held:-0}" -gt 0 ] || fail "nothing left with the broker while the store is full"
echo "store full with $held messages still with the broker"
is "$(queue_len dead)" 5 "nothing rejected for a full store"
# room again, as often as it fills: each held batch goes in, then the rest
i=0
while [ "$(queue_len m2w.full)" != 0 ] && [ $i -lt 60 ]; do
	"$QCTL" -d "$S2" purge --done --older-than 0s >/dev/null 2>&1
	sleep 1; i=$((i + 1))
done
is "$(queue_len m2w.full)" 0 "all taken, purges making room"
i=0; while [ "$(state | jq '[.tracks | keys[] | select(startswith("AMF"))] | length')" != 5000 ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
state >"$T/state.json"
is "$(jq '[.tracks | keys[] | select(startswith("AMF"))] | length' "$T/state.json")" 5000 "every held track in Magento"
is "$(jq '[.tracks | to_entries[] | select(.value != 1)] | length' "$T/state.json")" 0 "no track twice"
kill -TERM "$DPID"; wait "$DPID"; DPID=
echo "amqp.sh: $fails failed"
[ "$fails" -eq 0 ]
