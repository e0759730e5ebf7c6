#!/bin/sh
# daemon.sh - m2worker end to end against the fake Magento: every job type,
# retries, dead letters, Retry-After, an outage, SIGKILL at random moments
# (every tracking number reaches Magento exactly once, no order is shipped
# twice) and SIGTERM in the middle of a batch (nothing lost).
#
# M2W_KILLS=N sets the number of SIGKILL rounds (default 20).
# M2W_WRAP runs the daemon under a command (.ci/valgrind: valgrind ...);
# then start() also waits for the pool to be up, and M2W_TIME_FACTOR (default
# 1) stretches the waits that give the daemon time to work.
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
KILLS=${M2W_KILLS:-20}
TF=${M2W_TIME_FACTOR:-1}
tf() { awk -v s="$1" -v f="$TF" 'BEGIN { printf "%.3f", s * f }'; } # SECONDS * factor
lib_setup daemon

# --- the fake Magento
lib_fake --orders 400 --products 50
faults() { curl -s -X POST -H 'Content-Type: application/json' -d "$1" "$F/_fake/faults" >/dev/null; }

# --- configuration: short backoffs, leases and cool-downs for a test
cat >"$T/m2w.conf" <<EOF
[store]
path = $S
[magento]
base_url = $F
auth = token
token = test-token
timeout = 3s
[workers]
threads = 6
shutdown_grace = 5s
reap_interval = 200ms
[breaker]
failures = 8
cooldown = 1s
[log]
level = debug
file = $T/m2w.log
[tracking]
backoff_base = 100ms
backoff_cap = 400ms
lease = 2s
max_attempts = 25
[stock]
backoff_base = 100ms
backoff_cap = 400ms
batch = 10
# shorter than a slow call below: the keeper must extend it
lease = 1s
[price]
backoff_base = 100ms
backoff_cap = 400ms
[rest]
backoff_base = 200ms
backoff_cap = 200ms
max_attempts = 2
[carriers]
UPS Ground = ups
EOF
${M2W_WRAP:-} "$M2W" -c "$T/m2w.conf" --check-config >/dev/null || { fail "config"; exit 1; }

# start [CONF]: the daemon in the background; under M2W_WRAP, until its pool is up
n_up() { n=$(grep -c 'pool.start' "$T/m2w.log" 2>/dev/null); echo "${n:-0}"; }
start() {
	ups=$(n_up)
	${M2W_WRAP:-} "$M2W" -c "${1:-$T/m2w.conf}" & DPID=$!
	[ -n "${M2W_WRAP:-}" ] || return 0
	i=0
	while [ "$(n_up)" = "$ups" ]; do
		i=$((i + 1))
		[ $i -gt $(awk -v f="$TF" 'BEGIN { print int(100 * f) }') ] && { fail "the daemon is not up"; return 1; }
		sleep 0.1
	done
}
stop() { [ -n "$DPID" ] && kill -TERM "$DPID" && wait "$DPID"; DPID=; }
q() { "$QCTL" -d "$S" "$@"; }
total() { q stats --json | jq -r ".totals.$1"; }
pending() { q stats --json | jq -r '.totals | .ready + .scheduled + .leased + .waiting'; }
# wait_drained SECONDS: until nothing is pending
wait_drained() {
	i=0
	while [ "$(pending)" != 0 ]; do
		i=$((i + 1))
		[ $i -gt "$(awk -v s="$1" -v f="$TF" 'BEGIN { print int(s * f * 10) }')" ] && { fail "not drained after $1 s: $(q stats --json | jq -c .totals)"; return 1; }
		sleep 0.1
	done
}
enq() { # TYPE NDJSON-FILE
	q enqueue --type "$1" --format ndjson "$2" >/dev/null 2>"$T/enq.err" ||
		fail "enqueue $1: $(cat "$T/enq.err")"
}
tracks_json() { # FIRST LAST ORDERS: tracking lines for tracks FIRST..LAST over ORDERS orders
	seq "$1" "$2" | awk -v n="$3" '{ printf "{\"order\":\"%d\",\"track\":\"TRK%06d\",\"carrier\":\"%s\"}\n", 1000000000 + ($1 % n) + 1, $1, ($1 % 3 ? "ups" : "UPS Ground") }'
}
once_each() { # every tracking number exactly once, no order shipped twice
	state >"$T/state.json"
	is "$(jq '[.tracks[] | select(. != 1)] | length' "$T/state.json")" 0 "tracks posted more than once"
	is "$(jq '[.shipments_per_order[] | select(. != 1)] | length' "$T/state.json")" 0 "orders shipped twice"
	is "$(jq '.tracks | length' "$T/state.json")" "$1" "distinct tracking numbers in Magento"
}

# --- 1. every job type, happy path
say "happy path"
tracks_json 1 20 10 >"$T/t1.ndjson"
enq tracking "$T/t1.ndjson"
printf '{"sku":"SKU-%d","qty":%d}\n' 1 11 2 12 3 13 >"$T/s1.ndjson"
enq stock "$T/s1.ndjson"
printf '{"sku":"SKU-%d","price":%d.5}\n' 1 21 2 22 >"$T/p1.ndjson"
enq price "$T/p1.ndjson"
echo '{"method":"GET","path":"/orders/1"}' >"$T/r1.ndjson"
enq rest "$T/r1.ndjson"
start
wait_drained 20
is "$(total done)" 26 "done after the happy path"
is "$(total dead)" 0 "dead after the happy path"
once_each 20
is "$(jq -r '.stock["SKU-2"].default.quantity' "$T/state.json")" 12 "stock of SKU-2"
is "$(jq -r '.prices["SKU-1"]["0"]' "$T/state.json")" 21.5 "price of SKU-1"
is "$(jq -r '[.orders[] | .shipments[].tracks[] | select(.track_number=="TRK000003") | .carrier_code][0]' "$T/state.json")" ups "carrier mapped from [carriers]"

# --- 2. permanent errors: dead at once with Magento's message
say "permanent errors"
echo '{"order":"999999999","track":"TRK-NOORDER","carrier":"ups"}' >"$T/t2.ndjson"
enq tracking "$T/t2.ndjson"
echo '{"sku":"NOPE","price":1}' >"$T/p2.ndjson"
enq price "$T/p2.ndjson"
wait_drained 20
is "$(total dead)" 2 "dead after permanent errors"
q list --state dead --type price --json >"$T/dead.json"
is "$(jq -r '.tasks[0].last_error' "$T/dead.json")" "The SKU \"NOPE\" of the product that was requested doesn't exist. Verify the product and try again." "Magento's message, filled"
is "$(jq -r '.tasks[0].attempts' "$T/dead.json")" 1 "permanent: one attempt"

# --- 3. transient errors are retried until done; Retry-After is honoured
say "transient errors and Retry-After"
faults '{"fail_rate":0.2,"fail_status":503,"retry_after":1}'
tracks_json 21 60 40 >"$T/t3.ndjson"
enq tracking "$T/t3.ndjson"
wait_drained 60
faults '{"fail_rate":0}'
is "$(total dead)" 2 "no new dead after transient errors"
once_each 60
retried=$(q list --state done --type tracking --limit 1000 --json | jq '[.tasks[] | select(.attempts > 1)] | length')
[ "$retried" -gt 0 ] || fail "no task needed a retry at a 20% failure rate"
id=$(q list --state done --type tracking --limit 1000 --json | jq '[.tasks[] | select(.last_status == 503)][0].id')
q show "$id" --json >"$T/show.json"
gap=$(jq '[.history[] | .at_ms] | (.[1] - .[0])' "$T/show.json")
[ "$gap" -ge 900 ] || fail "Retry-After 1s not honoured: next attempt after ${gap}ms"

# --- 4. attempts used up -> dead ([rest] max_attempts = 2)
say "attempts used up"
faults '{"fail_rate":1,"fail_status":500}'
echo '{"method":"GET","path":"/orders/2"}' >"$T/r4.ndjson"
enq rest "$T/r4.ndjson"
i=0
while [ "$(q list --state dead --type rest --json | jq '.tasks | length')" != 1 ] && [ $i -lt "$(awk -v f="$TF" 'BEGIN { print int(100 * f) }')" ]; do sleep 0.1; i=$((i + 1)); done
faults '{"fail_rate":0}'
q list --state dead --type rest --json >"$T/dead.json"
is "$(jq -r '.tasks[0].attempts' "$T/dead.json")" 2 "rest dead after max_attempts"
is "$(jq -r '.tasks[0].last_status' "$T/dead.json")" 500 "last status kept"
wait_drained 20

# --- 5. an outage: the breaker holds the tasks, nothing dies, all done after
say "outage"
dead_before=$(total dead)
faults '{"outage":true}'
tracks_json 61 120 60 >"$T/t5.ndjson"
enq tracking "$T/t5.ndjson"
sleep "$(tf 4)"
grep -q 'breaker state=open' "$T/m2w.log" || fail "the breaker did not open in the outage"
is "$(total dead)" "$dead_before" "tasks dead during the outage"
faults '{"outage":false}'
wait_drained 40
is "$(total dead)" "$dead_before" "tasks dead after the outage"
grep -q 'breaker state=closed' "$T/m2w.log" || fail "the breaker did not close after the outage"
once_each 120
stop

# --- 5b. qctl beside a running daemon: pause, requeue, inspect
say "qctl while the daemon works"
start
q pause tracking >/dev/null
sleep "$(tf 0.3)"
tracks_json 521 530 330 >"$T/t5b.ndjson"
enq tracking "$T/t5b.ndjson"
sleep "$(tf 1.2)"
is "$(q stats --json | jq '.totals.ready')" 10 "a pause stops leasing within a second"
q resume tracking >/dev/null
wait_drained 10
echo '{"order":"999999998","track":"TRK-LATER","carrier":"ups"}' >"$T/t5c.ndjson"
enq tracking "$T/t5c.ndjson"
wait_drained 10
id=$(q list --state dead --type tracking --grep "999999998" --json | jq '.tasks[0].id')
q requeue "$id" >/dev/null || fail "requeue beside the daemon"
sleep "$(tf 1.5)"
is "$(q show "$id" --json | jq -r '.state')" dead "a requeued task is run again within a second or so"
is "$(q show "$id" --json | jq '.history | length')" 2 "the requeued task ran a second time"
q list --state done --limit 5 >/dev/null || fail "list beside the daemon"
q check >/dev/null || fail "check beside the daemon: $(q check 2>&1)"
q backup "$T/bk" >/dev/null || fail "backup beside the daemon"
"$QCTL" -d "$T/bk" check >/dev/null || fail "the backup does not check"
dead_before=$(total dead)
stop

# --- 6. SIGKILL at random moments: exactly once, no double shipment
say "SIGKILL x $KILLS"
faults '{"latency_ms":15}'
tracks_json 121 520 330 >"$T/t6.ndjson"
enq tracking "$T/t6.ndjson"
k=0
while [ $k -lt "$KILLS" ]; do
	start
	# 50..600 ms of work, then no warning at all
	sleep "$(awk -v s="$k" -v f="$TF" 'BEGIN { srand(s * 7919 + 17); printf "%.3f", (0.05 + rand() * 0.55) * f }')"
	kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	k=$((k + 1))
done
q check >/dev/null || fail "store check after $KILLS kills: $(q check 2>&1)"
start
wait_drained 90
faults '{"latency_ms":0}'
is "$(total dead)" "$dead_before" "tasks dead after the kills"
once_each 530

# --- 7. SIGTERM in the middle of a batch: nothing lost, nothing counted
say "SIGTERM mid-batch"
stop
faults '{"latency_ms":1500}'
seq 1 30 | awk '{ printf "{\"sku\":\"SKU-%d\",\"qty\":%d}\n", $1, 100 + $1 }' >"$T/s7.ndjson"
enq stock "$T/s7.ndjson"
from=$(($(wc -l <"$T/m2w.log") + 1))
start
sleep 1
stop
tail -n +"$from" "$T/m2w.log" >"$T/stage7.log"
is "$(total leased)" 0 "leased after SIGTERM"
grep -q 'lease.extend' "$T/stage7.log" || fail "no lease was extended during 1.5 s calls with a 1 s lease"
! grep -q 'lease.reaped\|settle_refused' "$T/stage7.log" || fail "a lease ran out while its call was running: $(grep 'lease.reaped\|settle_refused' "$T/stage7.log" | head -3)"
q check >/dev/null || fail "store check after SIGTERM"
faults '{"latency_ms":0}'
start
wait_drained 30
stop
state >"$T/state.json"
is "$(jq -r '.stock["SKU-30"].default.quantity' "$T/state.json")" 130 "stock after SIGTERM and restart"
is "$(q stats --json | jq -r '.totals.done')" "$(( $(q stats --json | jq -r '[.totals[]] | add') - $(total dead) - $(total superseded) ))" "everything not dead is done"
grep -q '"pool.stop"\|pool.stop' "$T/m2w.log" || fail "no pool.stop line"

# --- 8. grace over: calls aborted, tasks released without counting
say "SIGTERM past the grace period"
sed 's/^shutdown_grace = .*/shutdown_grace = 300ms/' "$T/m2w.conf" >"$T/short.conf"
faults '{"latency_ms":3000}'
seq 31 40 | awk '{ printf "{\"sku\":\"SKU-%d\",\"qty\":%d}\n", $1, 100 + $1 }' >"$T/s8.ndjson"
enq stock "$T/s8.ndjson"
start "$T/short.conf"
sleep 1
stop
grep -q 'pool.abort' "$T/m2w.log" || fail "no pool.abort after the grace period"
grep -q 'task.released' "$T/m2w.log" || fail "no task released after the grace period"
is "$(total leased)" 0 "leased after an aborted stop"
is "$(q list --state ready --type stock --json | jq '[.tasks[] | select(.attempts != 0)] | length')" 0 "released tasks keep their attempt uncounted"
faults '{"latency_ms":0}'
start
wait_drained 30
stop
is "$(state | jq -r '.stock["SKU-40"].default.quantity')" 140 "stock after the aborted stop and a restart"

echo "daemon.sh: $fails failed"
[ "$fails" -eq 0 ]
