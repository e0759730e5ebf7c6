#!/bin/sh
# limit.sh - [magento] concurrency = auto end to end: the daemon drains
# tracking tasks against the fake Magento with its calls passing the
# adaptive limit: the limit shows in /metrics and the console's overview,
# climbs from concurrency_min while Magento answers fast (qctl stats shows
# it from the daemon's note in the store), is cut (logged
# as a warning) when Magento answers 503, never leaves [min, max], and
# every track reaches Magento exactly once. A fixed `concurrency = 2`
# never has more than 2 calls in flight.
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
lib_setup limit
lib_fake --orders 2000 --products 10 --latency-ms 20

# config CONCURRENCY_LINES
config() {
	cat >"$T/m2w.conf" <<EOF
[store]
path = $S
[magento]
base_url = $F
auth = token
token = test-token
timeout = 5s
$1
[workers]
threads = 16
shutdown_grace = 2s
reap_interval = 200ms
[tracking]
batch = 5
backoff_base = 200ms
backoff_cap = 1s
max_attempts = 20
[breaker]
failures = 1000
[log]
level = info
file = $T/m2w.log
[http]
enabled = yes
listen = 127.0.0.1
port = $HP
tokens = t
EOF
}


# enqueue N FIRST: N tracking tasks, one per order from order FIRST
enqueue() {
	awk -v n="$1" -v f="$2" 'BEGIN { for (i = 0; i < n; i++)
		printf "{\"order\":\"%d\",\"track\":\"LIM%06d\",\"carrier\":\"ups\"}\n",
			1000000000 + f + i, f + i }' >"$T/t.ndjson"
	lib_q enqueue --type tracking --format ndjson "$T/t.ndjson" >/dev/null ||
		fail "enqueue"
}

metric() { curl -s "$H/metrics" | sed -n "s/^$1 //p" | head -1; }

say "auto: the limit climbs from its minimum"
: >"$T/m2w.log"
lib_start "concurrency = auto
concurrency_min = 2
concurrency_max = 16"
grep -q "pool.start threads=16 types=4 concurrency=auto" "$T/m2w.log" ||
	fail "pool.start does not say concurrency=auto"
enqueue 1200 1
min=100 max=0 samples=0
i=0
while [ "$(lib_pending)" != 0 ] && [ $i -lt 300 ]; do
	l=$(metric 'm2worker_magento_concurrency_limit{mode="auto"}')
	if [ -n "$l" ]; then
		samples=$((samples + 1))
		[ "$l" -lt "$min" ] && min=$l
		[ "$l" -gt "$max" ] && max=$l
	fi
	sleep 0.1; i=$((i + 1))
done
lib_wait_drained 30
echo "limit between $min and $max over $samples samples"
sleep 1
lib_q stats | grep -q "^magento calls: limit [0-9]* (auto), [0-9]* in flight" ||
	fail "qctl stats does not show the limit: $(lib_q stats | tail -2)"
lib_q stats --json | jq -e '.daemon.concurrency.mode == "auto" and
	(.daemon.concurrency.limit >= 2) and (.daemon.at_ms > 0)' >/dev/null ||
	fail "qctl stats --json: $(lib_q stats --json | jq -c .daemon)"
[ "$samples" -gt 0 ] || fail "no m2worker_magento_concurrency_limit in /metrics"
[ "$min" -ge 2 ] || fail "the limit went below concurrency_min: $min"
[ "$max" -le 16 ] || fail "the limit went above concurrency_max: $max"
[ "$max" -ge 4 ] || fail "the limit never climbed from 2 on an idle Magento: $max"

say "auto: 503s cut the limit (logged), nothing is lost"
curl -s -X POST -d '{"fail_rate":0.5,"fail_status":503,"retry_after":0}' \
	"$F/_fake/faults" >/dev/null
enqueue 300 1201
sleep 3
cuts=$(metric m2worker_magento_concurrency_cuts_total)
[ "${cuts:-0}" -gt 0 ] || fail "no cut in /metrics after 503s: '$cuts'"
curl -s -X POST -d '{"fail_rate":0}' "$F/_fake/faults" >/dev/null
lib_wait_drained 60
sleep 11  # the keeper logs the limit at most every 10 s
grep -q "warn pool.limit limit=.*cuts=[1-9]" "$T/m2w.log" ||
	fail "no pool.limit warning with the cuts: $(grep pool.limit "$T/m2w.log" | tail -3)"
is "$(lib_q stats --json | jq .totals.dead)" 0 "dead tasks"
is "$(lib_q stats --json | jq .totals.done)" 1500 "done tasks"
state >"$T/state.json"
is "$(jq '[.tracks | to_entries[] | select(.key | startswith("LIM"))] | length' "$T/state.json")" 1500 "tracks in Magento"
is "$(jq '[.tracks | to_entries[] | select(.value != 1)] | length' "$T/state.json")" 0 "tracks not there exactly once"
kill "$DPID"; wait "$DPID"; DPID=

say "fixed: concurrency = 2 keeps 2 calls in flight at most"
rm -rf "$S"
: >"$T/m2w.log"
lib_start "concurrency = 2"
enqueue 200 1601
peak=0 i=0
while [ "$(lib_pending)" != 0 ] && [ $i -lt 300 ]; do
	f=$(metric m2worker_magento_inflight)
	[ -n "$f" ] && [ "$f" -gt "$peak" ] && peak=$f
	sleep 0.05; i=$((i + 1))
done
lib_wait_drained 30
echo "peak in flight: $peak"
[ "$peak" -le 2 ] || fail "more than 2 calls in flight: $peak"
is "$(metric 'm2worker_magento_concurrency_limit{mode="fixed"}')" 2 "fixed limit"
kill "$DPID"; wait "$DPID"; DPID=

[ "$fails" -eq 0 ]
