#!/bin/sh
# retention.sh - a store that runs for years: retention, the daemon's
# lock, and recovery at start.
#
# Retention ([store] keep_done, keep_superseded, keep_dead, second-scale
# here): tasks keep arriving while the daemon works, and done, superseded
# and dead tasks older than their keep time are purged in the background
# (qctl stats and /metrics count them; the log says so); their keys are
# free again: the same tracking rows enqueued again are accepted, and the
# read before the write finds the tracks, so none reaches Magento twice.
#
# The lock: a second daemon on the same store is refused and says which
# pid holds it; qctl works beside the running daemon.
#
# Recovery: with 64 tasks leased (Magento answering in 30 s), kill -9 and
# a restart: every one runs again within 2 s, not after its 60 s lease;
# the attempt each was leased for stays counted (2 attempts, none dead).
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
lib_setup retention
lib_fake --orders 400 --products 50

# config EXTRA_LINES...
config() {
	cat >"$T/m2w.conf" <<EOF
[store]
path = $S
keep_done = 2s
keep_superseded = 1s
keep_dead = 3s
purge_interval = 300ms
[magento]
base_url = $F
auth = token
token = test-token
timeout = 60s
[workers]
threads = 64
shutdown_grace = 1s
[tracking]
batch = 1
max_attempts = 5
[log]
level = info
file = $T/m2w.log
[http]
enabled = yes
listen = 127.0.0.1
port = $HP
tokens = t
${1:-}
EOF
}


# tracks N FIRST PREFIX: N tracking tasks, one per order from order FIRST
tracks() {
	awk -v n="$1" -v f="$2" -v p="$3" 'BEGIN { for (i = 0; i < n; i++)
		printf "{\"order\":\"%d\",\"track\":\"%s%06d\",\"carrier\":\"ups\"}\n",
			1000000000 + f + i, p, f + i }' >"$T/t.ndjson"
	lib_q enqueue --type tracking --format ndjson \
		--key-field track "$T/t.ndjson" >"$T/enq.out" || fail "enqueue tracks"
}

# stock N: N stock updates of 5 SKUs (newest wins: most are superseded)
stock() {
	awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++)
		printf "{\"sku\":\"SKU-%d\",\"qty\":%d}\n", i % 5, i }' >"$T/s.ndjson"
	lib_q enqueue --type stock --format ndjson "$T/s.ndjson" >/dev/null ||
		fail "enqueue stock"
}

metric() { curl -s "$H/metrics" | sed -n "s/^$1 //p" | head -1; }
totals() { lib_q stats --json | jq -c .totals; }

say "retention: done, superseded and dead tasks go while work goes on"
: >"$T/m2w.log"
lib_start
tracks 200 1 RET
stock 200
# unknown orders: dead at once (404)
printf '{"order":"999999991","track":"DEAD1","carrier":"ups"}\n{"order":"999999992","track":"DEAD2","carrier":"ups"}\n' >"$T/d.ndjson"
lib_q enqueue --type tracking --format ndjson --key-field track "$T/d.ndjson" >/dev/null
lib_wait_drained 30
t=$(totals)
echo "drained: $t"
dead=$(echo "$t" | jq .dead) # the 2 unknown orders, a SKU Magento lacks
[ "$(echo "$t" | jq '.done + .superseded')" -gt 0 ] || fail "nothing ended: $t"
# more work arrives while the first batch ages out
i=0
while [ $i -lt 4 ]; do
	tracks 20 $((201 + i * 20)) RET
	sleep 1; i=$((i + 1))
done
lib_wait_drained 30
sleep 4  # past every keep time and a purge round
t=$(totals)
echo "after the keep times: $t"
is "$(echo "$t" | jq .done)" 0 "done tasks left"
is "$(echo "$t" | jq .superseded)" 0 "superseded tasks left"
is "$(echo "$t" | jq .dead)" 0 "dead tasks left"
p=$(lib_q stats --json | jq -c .purged)
echo "purged: $p"
done_total=$(curl -s "$H/metrics" | awk '/^m2worker_tasks_done_total/ { n += $2 } END { print n }')
is "$(echo "$p" | jq .done)" "$done_total" "purged done (every task done so far)"
[ "$done_total" -gt 280 ] || fail "done so far: $done_total (280 tracks and the SKUs' newest)"
[ "$(echo "$p" | jq .superseded)" -gt 0 ] || fail "no superseded purged: $p"
is "$(echo "$p" | jq .dead)" "$dead" "purged dead"
lib_q stats | grep -q "^purged so far: $done_total done, [0-9]* superseded, $dead dead" ||
	fail "qctl stats does not say what was purged: $(lib_q stats | tail -3)"
is "$(metric 'm2worker_purged_total{state="dead"}')" "$dead" "m2worker_purged_total{dead}"
grep -q "info retention.purged done=" "$T/m2w.log" || fail "no retention.purged line"
say "keys freed: the same rows again are accepted, no track reaches Magento twice"
tracks 200 1 RET
is "$(cat "$T/enq.out")" "accepted 200, duplicates 0, rejected 0" "the same rows again"
lib_wait_drained 30
state >"$T/state.json"
is "$(jq '[.tracks | to_entries[] | select(.key | startswith("RET"))] | length' "$T/state.json")" 280 "tracks in Magento"
is "$(jq '[.tracks | to_entries[] | select(.value != 1)] | length' "$T/state.json")" 0 "tracks not there exactly once"

say "lock: a second daemon on the store is refused, qctl is not"
HP2=$(lib_pick_port)
sed "s/^port = .*/port = $HP2/; s#^file = .*#file = $T/second.log#" "$T/m2w.conf" >"$T/second.conf"
"$M2W" -c "$T/second.conf"; rc=$?
is "$rc" 1 "second daemon's exit status"
grep -q "error start error=\"store $S is in use by another m2worker (pid $DPID)" "$T/second.log" ||
	fail "the refusal does not name the store and pid $DPID: $(cat "$T/second.log")"
kill -0 "$DPID" || fail "the first daemon died"
lib_q stats >/dev/null || fail "qctl stats beside the daemon"
tracks 1 300 LOCK
lib_wait_drained 10
kill "$DPID"; wait "$DPID"; DPID=

say "recovery: 64 leased tasks run again within 2 s of a restart"
curl -s -X POST -d '{"latency_ms":30000}' "$F/_fake/faults" >/dev/null
rm -rf "$S"
lib_start
tracks 64 320 REC
i=0
while [ "$(lib_q stats --json | jq .totals.leased)" != 64 ] && [ $i -lt 100 ]; do
	sleep 0.1; i=$((i + 1))
done
is "$(lib_q stats --json | jq .totals.leased)" 64 "leased before the kill"
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
curl -s -X POST -d '{"latency_ms":0}' "$F/_fake/faults" >/dev/null
t0=$(date +%s%N)
lib_start
i=0
while [ "$(lib_q stats --json | jq .totals.done)" -lt 64 ] 2>/dev/null && [ $i -lt 300 ]; do
	sleep 0.05; i=$((i + 1))
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "64 stranded tasks done ${ms} ms after the restart began"
is "$(lib_q stats --json | jq .totals.done)" 64 "done after the restart"
[ "$ms" -lt 2000 ] || fail "recovery took $ms ms (wanted < 2 s)"
grep -q "warn recovery tasks=64 " "$T/m2w.log" || fail "no recovery line for 64 tasks"
id=$(lib_q list --state done --json | jq -r '.tasks[0].id')
lib_q show "$id" | grep -q "released at start" || fail "task $id's history lacks the release: $(lib_q show "$id")"
is "$(lib_q show "$id" --json | jq .attempts)" 2 "attempts of a released task (counted)"
state >"$T/state.json"
is "$(jq '[.tracks | to_entries[] | select(.key | startswith("REC"))] | length' "$T/state.json")" 64 "recovered tracks in Magento"
kill "$DPID"; wait "$DPID"; DPID=

[ "$fails" -eq 0 ]
