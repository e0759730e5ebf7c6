#!/bin/sh
# fake-capacity.sh - the fake Magento's PHP workers (--php-workers: at most
# N API and storefront requests in service, the rest waiting in FIFO
# order), GET /storefront, the pool's numbers in /_fake/state, its size
# changed at run time, a stop with requests waiting, and tools/bench/probe
# against the storefront.
#
# Timing bounds are one-sided where they can be (a request that waited
# for two others of 200 ms cannot finish in under 400 ms), and generous
# where they cannot (a loaded 2-core machine): the counters in
# /_fake/state carry the exact checks.
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
lib_setup fake-capacity
PROBE="$top_builddir/tools/bench/probe"
[ -x "$PROBE" ] || { echo "tools/bench/probe not built: skipped"; exit 77; }
curl --help all 2>/dev/null | grep -q -- --parallel-immediate ||
	{ echo "curl without --parallel-immediate: skipped"; exit 77; }

# st FILTER: a jq filter over the fake's state
st() { state | jq -r "$1"; }
# faults JSON: POST /_fake/faults; the answer in $T/out, the status echoed
faults() { curl -s -o "$T/out" -w '%{http_code}' -X POST -d "$1" "$F/_fake/faults"; }
# burst N: N API calls at once (one curl, one connection each), each
# GET /orders/k; "<status> <seconds>" per call into $T/burst
burst() {
	_args='' _i=1
	while [ $_i -le "$1" ]; do
		_args="$_args -o /dev/null $F/rest/V1/orders/$_i"
		_i=$((_i + 1))
	done
	# shellcheck disable=SC2086 # the URLs split on purpose
	curl -s --parallel --parallel-immediate --parallel-max "$1" \
		-H 'Authorization: Bearer test-token' \
		-w '%{http_code} %{time_total}\n' $_args >"$T/burst" 2>/dev/null
}
slowest() { sort -k2 -n "$T/burst" | tail -n 1 | cut -d' ' -f2; }
codes() { cut -d' ' -f1 "$T/burst" | sort | uniq -c | awk '{ printf "%s%sx%s", (NR > 1 ? " " : ""), $1, $2 }'; }
# ge A B / lt A B: numeric comparisons (decimals)
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
# poll FILTER: until the state's FILTER is true (5 s at most); 1 if never
poll() {
	_i=0
	while [ "$(st "$1")" != true ]; do
		_i=$((_i + 1))
		[ $_i -gt 100 ] && return 1
		sleep 0.05
	done
}
stop_fake() {
	kill -TERM "$FAKE_PID" 2>/dev/null
	wait "$FAKE_PID"
	_rc=$?
	FAKE_PID=
	rm -f "$T/port"
	return $_rc
}

say "2 PHP workers, 200 ms a call: 6 calls at once take 3 rounds"
lib_fake --orders 20 --php-workers 2 --latency-ms 200 --storefront-ms 20
is "$(st '[.php_workers, .php_busy, .php_queued, .php_queued_max] | @csv')" "2,0,0,0" "fresh pool"
burst 6
is "$(codes)" "6x200" "answers"
t=$(slowest)
ge "$t" 0.55 || fail "the last of 6 calls on 2 workers took $t s, wanted >= 0.55 (3 rounds of 200 ms)"
lt "$t" 5 || fail "the last of 6 calls took $t s"
is "$(st .php_busy_max)" 2 "never more than 2 in service"
ge "$(st .php_queued_max)" 4 || fail "php_queued_max $(st .php_queued_max), wanted >= 4"
is "$(st '[.php_busy, .php_queued] | @csv')" "0,0" "nothing in service or waiting after"
is "$(st .php_served_api)" 6 "API calls served"
is "$(st .total_requests)" 6 "total_requests (API)"
# 2 waited ~200 ms and 2 ~400 ms (less by how late they arrived)
ge "$(st .php_wait_ms_total)" 800 || fail "php_wait_ms_total $(st .php_wait_ms_total), wanted >= 800"

say "the control endpoints take no worker"
burst 6 &
bp=$!
# an answer showing calls waiting was not itself in the queue: had it
# waited, everything before it would have been admitted by then
poll '.php_queued > 0' || fail "never saw a call waiting: $(state | jq -c '{php_busy, php_queued}')"
is "$(st '.php_busy <= 2')" true "at most 2 in service"
wait $bp
is "$(codes)" "6x200" "answers"

say "GET /storefront: 200, HTML, one worker"
curl -s -D "$T/hdr" -o "$T/page" -w '%{http_code}' "$F/storefront" >"$T/code"
is "$(cat "$T/code")" 200 "storefront status"
grep -qi '^Content-Type: text/html' "$T/hdr" || fail "storefront Content-Type: $(grep -i content-type "$T/hdr")"
grep -q '<html' "$T/page" || fail "storefront body: $(head -c 200 "$T/page")"
is "$(st .php_served_storefront)" 1 "storefront served"
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$F/storefront")" 404 "POST /storefront"
is "$(st .total_requests)" 12 "the storefront is not an API request"

say "php_workers through POST /_fake/faults"
is "$(faults '{"php_workers": 3}')" 200 "set 3"
is "$(jq .php_workers "$T/out")" 3 "answer"
is "$(st .php_workers)" 3 "state"
is "$(faults '{"php_workers": -1}')" 400 "-1 refused"
is "$(faults '{"php_workers": 1.5}')" 400 "1.5 refused"
is "$(faults '{"php_workers": 1, "nonsense": 1}')" 400 "with an unknown key"
is "$(st .php_workers)" 3 "unchanged by refused settings"

say "a larger pool admits the waiting calls at once"
is "$(faults '{"php_workers": 1, "latency_ms": 500}')" 200 "1 worker, 500 ms"
burst 4 &
bp=$!
poll '.php_queued == 3' || fail "never saw 3 calls waiting: $(state | jq -c '{php_busy, php_queued}')"
is "$(faults '{"php_workers": 0}')" 200 "unlimited"
wait $bp
is "$(codes)" "4x200" "answers"
t=$(slowest)
# one after another they would take 2 s
lt "$t" 1.7 || fail "the last call took $t s after the pool grew, wanted < 1.7"
is "$(st '[.php_busy, .php_queued, .php_workers] | @csv')" "0,0,0" "after"

say "/_fake/reset: the command line's size, counters from now"
curl -s -X POST "$F/_fake/reset" >/dev/null
is "$(st '[.php_workers, .php_queued_max, .php_busy_max, .php_wait_ms_total, .php_served_api, .php_served_storefront] | @csv')" \
	"2,0,0,0,0,0" "after reset"

say "SIGTERM with calls waiting: the fake stops at once"
is "$(faults '{"latency_ms": 3000}')" 200 "3 s a call"
burst 5 &
bp=$!
poll '.php_queued == 3' || fail "never saw 3 calls waiting: $(state | jq -c '{php_busy, php_queued}')"
t0=$(date +%s%3N)
kill -TERM "$FAKE_PID"
i=0
while kill -0 "$FAKE_PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
t1=$(date +%s%3N)
kill -0 "$FAKE_PID" 2>/dev/null && fail "the fake still runs 5 s after SIGTERM"
[ $((t1 - t0)) -lt 2500 ] || fail "the fake took $((t1 - t0)) ms to stop"
stop_fake || fail "the fake's exit status after SIGTERM"
wait $bp

say "unlimited (the default): 6 calls at once take one round"
lib_fake --orders 20 --latency-ms 200 --storefront-ms 20
is "$(st .php_workers)" 0 "default size"
burst 6
is "$(codes)" "6x200" "answers"
t=$(slowest)
# one round is 200 ms; 2 workers would make it 600
lt "$t" 0.55 || fail "the last of 6 calls took $t s without a limit, wanted < 0.55"
is "$(st '[.php_queued_max, .php_wait_ms_total, .php_served_api] | @csv')" "0,0,6" "nobody waited"
ge "$(st .php_busy_max)" 2 || fail "php_busy_max $(st .php_busy_max): the calls did not overlap"

say "the probe"
# field NAME: the value of NAME=... in the probe's last line
field() { tail -n 1 "$T/out" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
run 0 "$PROBE" -p "$(cat "$T/port")" -r 20 -d 2 -c 4 -s
grep -Eq '^probe requests=[0-9]+ ok=[0-9]+ errors=[0-9]+ rate=[0-9.]+ p50_ms=[0-9.]+ p90_ms=[0-9.]+ p99_ms=[0-9.]+ max_ms=[0-9.]+$' "$T/out" ||
	fail "probe line: $(tail -n 1 "$T/out")"
is "$(field requests)" 40 "probe requests"
is "$(field ok)" 40 "probe ok"
is "$(field errors)" 0 "probe errors"
# every page takes 20 ms of service: no answer can come sooner
ge "$(field p50_ms)" 19.5 || fail "probe p50 $(field p50_ms) ms, wanted >= 19.5"
ge "$(field max_ms)" "$(field p99_ms)" || fail "probe max < p99: $(tail -n 1 "$T/out")"
is "$(grep -c '^second=[12] requests=20 errors=0 p50_ms=[0-9.]* p99_ms=[0-9.]*$' "$T/out")" 2 "probe -s lines"
is "$(st .php_served_storefront)" 40 "the fake saw the probe"
run 1 "$PROBE" -p "$(cat "$T/port")" -r 10 -d 1 -u /nothing
is "$(field errors)" 10 "probe errors on a 404"
is "$(field ok)" 0 "probe ok on a 404"
# stopped early, it reports what it sent
"$PROBE" -p "$(cat "$T/port")" -r 20 -d 60 >"$T/out" 2>"$T/err" &
pp=$!
sleep 1
kill -TERM $pp
wait $pp
is "$?" 0 "probe exit status after SIGTERM"
n=$(field requests)
{ [ -n "$n" ] && [ "$n" -ge 5 ] && [ "$n" -le 200 ]; } || fail "probe stopped after 1 s sent '$n' requests: $(cat "$T/out" "$T/err")"
is "$(field errors)" 0 "probe errors when stopped"
run 2 "$PROBE" -r 10
stop_fake || fail "the fake's exit status"

[ "$fails" -eq 0 ] && echo "fake-capacity: ok"
[ "$fails" -eq 0 ]
