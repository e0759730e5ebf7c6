#!/bin/sh
# http.sh - the daemon's HTTP push endpoint against the fake Magento: auth,
# content types, body limit, malformed JSON and bad rows (400, nothing
# enqueued), every body format, duplicates, processing, pause (503), slow
# clients, 8 clients at once, /metrics /v1/stats /v1/tasks/{id}, shutdown
# (503 while draining), an admin token Magento refuses (renewed, logged and
# counted in /metrics) and a full store (507, the daemon keeps running).
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
lib_setup http
curl -V | grep -qi telnet || { echo "curl without telnet: skipped"; exit 77; }

TOKEN=push-secret-one
TOKEN2=push-secret-two

# --- the fake Magento
lib_fake --orders 1000 --products 50 --admin admin:admin-pass
AUTH="auth = token
token = test-token"

# config STORE MAP_LINES: the daemon's configuration, HTTP on $HP
config() {
	cat >"$T/m2w.conf" <<EOF
[store]
path = $1
$2
[magento]
base_url = $F
$AUTH
timeout = 5s
[workers]
threads = 4
shutdown_grace = 3s
reap_interval = 200ms
[log]
level = debug
file = $T/m2w.log
[rest]
max_attempts = 1
[http]
enabled = yes
listen = 127.0.0.1
port = $HP
tokens = $TOKEN, $TOKEN2
body_max = 64KiB
connections = 64
timeout = 2s
EOF
}

# start STORE [MAP_LINES]: the daemon on a free port (tried at random)
start() {
	tries=0
	while [ $tries -lt 20 ]; do
		tries=$((tries + 1))
		HP=$(( ($(date +%s) * 7 + $$ * 13 + tries * 1009) % 30000 + 20000 ))
		config "$1" "${2:-}"
		: >"$T/m2w.log"
		"$M2W" -c "$T/m2w.conf" & DPID=$!
		i=0
		while [ $i -lt 50 ]; do
			if ! kill -0 "$DPID" 2>/dev/null; then
				wait "$DPID"; DPID=; break
			fi
			[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/healthz")" = 200 ] &&
				{ H="http://127.0.0.1:$HP"; return 0; }
			sleep 0.1; i=$((i + 1))
		done
		[ -n "$DPID" ] && { kill -9 "$DPID"; wait "$DPID"; DPID=; }
		grep -q "cannot listen" "$T/m2w.log" || { cat "$T/m2w.log"; break; }
	done
	echo "daemon did not start"; exit 99
}
stop() { [ -n "$DPID" ] && kill -TERM "$DPID" && wait "$DPID"; DPID=; }

q() { "$QCTL" -d "$S" "$@"; }
total() { q stats --json | jq -r ".totals | $1"; }
tasks() { total '.ready + .scheduled + .leased + .waiting + .done + .dead + .superseded'; }
pending() { total '.ready + .scheduled + .leased + .waiting'; }
wait_drained() {
	i=0
	while [ "$(pending)" != 0 ]; do
		i=$((i + 1))
		[ $i -gt $(($1 * 10)) ] && { fail "not drained after $1 s: $(q stats --json | jq -c .totals)"; return 1; }
		sleep 0.1
	done
}
# post CTYPE FILE [QUERY] [TOKEN]: $code, the body in $T/resp, headers in $T/hdr
post() {
	code=$(curl -s -D "$T/hdr" -o "$T/resp" -w '%{http_code}' \
		-H "Authorization: Bearer ${4-$TOKEN}" -H "Content-Type: $1" \
		--data-binary "@$2" "$H/v1/tasks${3:-}")
}
get() { # PATH [TOKEN]
	code=$(curl -s -D "$T/hdr" -o "$T/resp" -w '%{http_code}' \
		-H "Authorization: Bearer ${2-$TOKEN}" "$H$1")
}
resp() { jq -r "$1" "$T/resp"; }
track() { # N: a tracking item of order N, track HTTP-N
	printf '{"type":"tracking","payload":{"order":"%d","track":"HTTP-%06d","carrier":"ups"}}' $((1000000000 + $1)) "$1"
}

start "$S"

# --- health, auth
say "healthz and auth"
code=$(curl -s -o "$T/resp" -w '%{http_code}' "$H/healthz")
is "$code $(cat "$T/resp")" "200 ok" "healthz"
track 1 >"$T/one.json"
code=$(curl -s -D "$T/hdr" -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$T/one.json" "$H/v1/tasks")
is "$code" 401 "push without a token"
grep -qi '^WWW-Authenticate: Bearer' "$T/hdr" || fail "401 without WWW-Authenticate"
post application/json "$T/one.json" "" wrong-token
is "$code" 401 "push with a wrong token"
post application/json "$T/one.json" "" "${TOKEN}x"
is "$code" 401 "push with a longer token"
post application/json "$T/one.json" "" "push-secret-on"
is "$code" 401 "push with a prefix of the token"
get /v1/stats ""
is "$code" 401 "stats without a token"
is "$(tasks)" 0 "tasks after refused pushes"
post application/json "$T/one.json" "" "$TOKEN2"
is "$code" 202 "push with the second token"
is "$(resp '.accepted | length')" 1 "accepted with the second token"
ID1=$(resp '.accepted[0]')
post application/json "$T/one.json"
is "$code" 202 "the same push again"
is "$(resp '.accepted | length') $(resp '.duplicates[0]')" "0 $ID1" "the same item again is a duplicate"
code=$(curl -s -o /dev/null -w '%{http_code}' "$H/metrics")
is "$code" 200 "metrics need no token"

# --- content type, size
say "content type, body limit"
post text/plain "$T/one.json"
is "$code" 415 "text/plain"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" --data-binary @"$T/one.json" "$H/v1/tasks")
is "$code" 415 "form content type (curl's default)"
head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big.json"
track 2 >>"$T/big.json"
post application/json "$T/big.json"
is "$code" 413 "body over body_max (Content-Length)"
code=$(curl -s -o "$T/resp" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
	--data-binary @"$T/big.json" "$H/v1/tasks")
is "$code" 413 "chunked body over body_max"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" "$H/v1/tasks")
is "$code" 405 "PUT /v1/tasks"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$H/v1/nothing")
is "$code" 404 "unknown path"
is "$(tasks)" 1 "tasks after 413/415"

# --- malformed JSON, bad rows: 400, nothing enqueued
say "malformed JSON and bad rows"
printf '[%s, {"type":"tracking", ' "$(track 3)" >"$T/bad.json"
post application/json "$T/bad.json"
is "$code" 400 "malformed JSON"
resp .error | grep -q "not valid JSON" || fail "malformed JSON: $(cat "$T/resp")"
printf '[%s,{"type":"tracking","payload":{"order":"1000000005","carrier":"ups"}},%s]' \
	"$(track 4)" "$(track 6)" >"$T/badrow.json"
post application/json "$T/badrow.json"
is "$code" 400 "a batch with a bad row"
is "$(resp '.errors | length') $(resp '.errors[0].row') $(resp '.errors[0].field')" "1 2 track" "the bad row named"
printf '%s\n{"type":"tracking","payload":{"order":"1000000007","track":"X","carrier":"ups"},"color":"red"}\n{"type":"nope","payload":{}}\nnot json\n' \
	"$(track 7)" >"$T/bad.ndjson"
post application/x-ndjson "$T/bad.ndjson"
is "$code" 400 "NDJSON with bad lines"
is "$(resp '[.errors[] | "\(.row):\(.line):\(.field)"] | join(" ")')" "2:2:color 3:3:type 4:4:null" "NDJSON errors"
printf 'order_number,tracking_number,carrier_code\n1000000008,HTTP-000008,ups\n1000000009,,ups\n' >"$T/bad.csv"
post text/csv "$T/bad.csv" "?type=tracking"
is "$code" 400 "CSV with a bad row"
is "$(resp '.errors[0].row') $(resp '.errors[0].line') $(resp '.errors[0].field')" "2 3 tracking_number" "the bad CSV row"
post text/csv "$T/bad.csv"
is "$code" 400 "CSV without ?type"
printf 'sku,qty\nA,1\n' >"$T/hdr.csv"
post text/csv "$T/hdr.csv" "?type=tracking"
is "$code" 400 "CSV without the columns of its type"
resp .error | grep -q "header has no order column" || fail "CSV header error: $(cat "$T/resp")"
printf '{"order":"1000000010","track":"T","carrier":"ups"}' >"$T/bare.json"
post application/json "$T/bare.json"
is "$code" 400 "a bare payload without ?type"
is "$(resp '.errors[0].field')" "order" "unknown key of an item"
is "$(tasks)" 1 "tasks after the 400s"

# --- every format
say "object, array, NDJSON, CSV"
post application/json "$T/one.json"
track 11 >"$T/obj.json"
post application/json "$T/obj.json"
is "$code $(resp '.accepted | length')" "202 1" "a JSON object"
printf '[%s,%s,%s]' "$(track 12)" "$(track 13)" "$(track 12)" >"$T/arr.json"
post application/json "$T/arr.json"
is "$code $(resp '.accepted | length') $(resp '.duplicates | length')" "202 2 1" "a JSON array, one item twice"
is "$(resp '.duplicates[0]')" "$(resp '.accepted[0]')" "the duplicate is the first item's task"
printf '%s\n\n%s\n' "$(track 14)" "$(track 15)" >"$T/items.ndjson"
post application/x-ndjson "$T/items.ndjson"
is "$code $(resp '.accepted | length')" "202 2" "NDJSON"
printf '{"order":"1000000016","track":"HTTP-000016","carrier":"ups"}\n' >"$T/bare.ndjson"
post application/x-ndjson "$T/bare.ndjson" "?type=tracking"
is "$code $(resp '.accepted | length')" "202 1" "NDJSON of bare payloads with ?type"
ID16=$(resp '.accepted[0]')
printf 'Order Number;Tracking Number;Carrier\r\n1000000017;HTTP-000017;ups\r\n1000000018;"HTTP-000018";UPS\r\n' >"$T/ok.csv"
post text/csv "$T/ok.csv" "?type=tracking"
is "$code $(resp '.accepted | length')" "202 2" "CSV (semicolons, CRLF, quotes)"
printf 'order_number,tracking_number,carrier_code,sku,qty\n1000000019,HTTP-000019,ups,SKU-19,2\n1000000019,HTTP-000019,ups,SKU-20,1\n' >"$T/items.csv"
post text/csv "$T/items.csv" "?type=tracking"
is "$code $(resp '.accepted | length')" "202 1" "CSV rows of one parcel are one task"
get "/v1/tasks/$(resp '.accepted[0]')"
is "$(resp '.payload.items | length')" 2 "items of the parcel"
printf 'sku,qty\nSKU-1,5\nSKU-2,7\n' >"$T/stock.csv"
post text/csv "$T/stock.csv" "?type=stock"
is "$code $(resp '.accepted | length')" "202 2" "stock CSV"
printf '{"type":"price","payload":{"sku":"SKU-3","price":9.5},"key":"p-1","not_before":1}' >"$T/price.json"
post application/json "$T/price.json"
is "$code $(resp '.accepted | length')" "202 1" "price with a key"
get "/v1/tasks/$(resp '.accepted[0]')"
is "$(resp .idempotency_key) $(resp .source)" "price:p-1 http:1" "explicit key and source"
post application/json "$T/price.json"
is "$(resp '.duplicates | length')" 1 "the same key again"

# --- the daemon runs them
say "processing"
wait_drained 20
is "$(total .dead)" 0 "dead tasks"
state >"$T/state.json"
for n in 1 11 12 13 14 15 16 17 18 19; do
	is "$(jq --arg t "$(printf 'HTTP-%06d' $n)" '.tracks[$t]' "$T/state.json")" 1 "track HTTP-$n in Magento once"
done
is "$(jq -r '.stock["SKU-2"].default.quantity' "$T/state.json")" 7 "stock from CSV"

# --- GETs
say "stats, task, metrics"
get /v1/stats
is "$code $(resp .totals.done)" "200 $(tasks)" "/v1/stats"
get "/v1/tasks/$ID16"
is "$code $(resp .id) $(resp .state) $(resp .payload.track)" "200 $ID16 done HTTP-000016" "/v1/tasks/ID"
get /v1/tasks/999999
is "$code" 404 "an unknown task"
get /v1/tasks/abc
is "$code" 404 "a task id that is no number"
get "/v1/tasks/$ID16" ""
is "$code" 401 "a task without a token"
code=$(curl -s -o "$T/metrics" -w '%{http_code}' "$H/metrics")
is "$code" 200 "/metrics"
grep -q '^m2worker_tasks{type="tracking",state="done"} ' "$T/metrics" || fail "metrics lack m2worker_tasks"
grep -q '^m2worker_magento_call_seconds_bucket{le="+Inf"} ' "$T/metrics" || fail "metrics lack the histogram"
grep -q '^m2worker_http_requests_total{code="202"} ' "$T/metrics" || fail "metrics lack HTTP requests"

# --- pause
say "pause"
q pause tracking >/dev/null
track 20 >"$T/p.json"
post application/json "$T/p.json"
is "$code" 503 "push of a paused type"
grep -qi '^Retry-After:' "$T/hdr" || fail "503 without Retry-After"
post application/json "$T/price.json"
is "$code" 202 "another type while tracking is paused"
q resume tracking >/dev/null
post application/json "$T/p.json"
is "$code $(resp '.accepted | length')" "202 1" "push after resume"

# --- slow clients
say "slow clients"
t0=$(date +%s)
pids=
for k in 1 2 3 4 5 6; do
	# a connection that sends nothing (curl's telnet ends when it closes)
	( curl -s -m 8 telnet://127.0.0.1:$HP </dev/null >/dev/null 2>&1; echo "$(( $(date +%s) - t0 ))" >"$T/idle.$k" ) &
	pids="$pids $!"
done
for k in 1 2 3 4 5 6; do
	# a body that trickles in, a byte a second
	( { printf '['; for b in 1 2 3 4 5 6 7 8; do sleep 1; printf ' '; done; printf ']'; } |
		curl -s -o /dev/null -w '%{http_code}' -X POST -T - \
		-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		"$H/v1/tasks" >"$T/slow.$k" 2>/dev/null; echo "$(( $(date +%s) - t0 ))" >"$T/slowt.$k" ) &
	pids="$pids $!"
done
sleep 0.5
i=0
while [ $i -lt 5 ]; do
	code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$H/healthz")
	is "$code" 200 "healthz while slow clients hang"
	i=$((i + 1))
done
track 21 >"$T/s.json"
code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' --data-binary @"$T/s.json" "$H/v1/tasks")
is "$code" 202 "a push while slow clients hang"
wait $pids
for k in 1 2 3 4 5 6; do
	[ "$(cat "$T/idle.$k")" -le 6 ] || fail "an idle connection lived $(cat "$T/idle.$k") s (timeout 2 s)"
	[ "$(cat "$T/slowt.$k")" -le 6 ] || fail "a trickling upload lived $(cat "$T/slowt.$k") s (timeout 2 s)"
	[ "$(cat "$T/slow.$k")" = 202 ] && fail "a trickling upload was accepted"
done
grep -q 'http.timeout' "$T/m2w.log" || fail "no http.timeout in the log"

# --- 8 clients at once
say "8 clients x 50 pushes"
before=$(tasks)
pids=
for c in 1 2 3 4 5 6 7 8; do
	(
		k=0
		while [ $k -lt 50 ]; do
			n=$((100 + c * 100 + k))
			track $n >"$T/c$c.json"
			curl -s -w '\n%{http_code}\n' -H "Authorization: Bearer $TOKEN" \
				-H 'Content-Type: application/json' \
				--data-binary @"$T/c$c.json" "$H/v1/tasks"
			k=$((k + 1))
		done >"$T/client.$c"
	) &
	pids="$pids $!"
done
wait $pids
is "$(cat "$T"/client.* | grep -c '^202$')" 400 "pushes answered 202"
is "$(cat "$T"/client.* | grep '^{' | jq -r '.accepted[]' | sort -u | wc -l | tr -d ' ')" 400 "distinct ids accepted"
is "$(( $(tasks) - before ))" 400 "new tasks in the store"
wait_drained 60
state >"$T/state.json"
is "$(jq '[.tracks | to_entries[] | select(.key | startswith("HTTP-0002") or startswith("HTTP-0003") or startswith("HTTP-0004") or startswith("HTTP-0005") or startswith("HTTP-0006") or startswith("HTTP-0007") or startswith("HTTP-0008") or startswith("HTTP-0009")) | select(.value == 1)] | length' "$T/state.json")" 400 "each pushed track in Magento exactly once"
is "$(jq '[.tracks[] | select(. != 1)] | length' "$T/state.json")" 0 "tracks posted twice"

# --- shutdown: 503 while draining
say "draining"
curl -s -X POST -H 'Content-Type: application/json' -d '{"latency_ms":2500}' "$F/_fake/faults" >/dev/null
track 30 >"$T/d.json"
post application/json "$T/d.json"
is "$code" 202 "push before the stop"
i=0
while [ "$(total .leased)" = 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -TERM "$DPID"
sleep 0.3
code=$(curl -s -o /dev/null -w '%{http_code}' "$H/healthz")
is "$code" 503 "healthz while draining"
track 31 >"$T/d2.json"
post application/json "$T/d2.json"
is "$code" 503 "push while draining"
wait "$DPID"; DPID=
curl -s -X POST -H 'Content-Type: application/json' -d '{"latency_ms":0}' "$F/_fake/faults" >/dev/null
grep -q 'push.accepted tasks=1 duplicates=0 type=tracking' "$T/m2w.log" || fail "no push.accepted line"

# --- auth = admin: a token Magento refuses is renewed, logged, counted
say "admin token renewed after a 401"
S="$T/admin"
AUTH="auth = admin
username = admin
password = admin-pass"
start "$S"
track 40 >"$T/a.json"
post application/json "$T/a.json"
is "$code" 202 "push in admin mode"
wait_drained 20
curl -s -X POST "$F/_fake/expire-tokens" >/dev/null
track 41 >"$T/a.json"
post application/json "$T/a.json"
wait_drained 20
is "$(total .done)" 2 "tasks done across the renewal"
curl -s "$H/metrics" >"$T/metrics"
grep -q '^m2worker_magento_token_renewals_total{reason="401"} 1$' "$T/metrics" ||
	fail "metrics lack one 401 renewal: $(grep token_renewals "$T/metrics")"
grep -q '^m2worker_magento_token_renewals_total{reason="expiry"} 0$' "$T/metrics" ||
	fail "metrics lack the expiry renewals"
grep -q 'info magento.token.renewed why="401 on GET /orders' "$T/m2w.log" ||
	fail "no magento.token.renewed line: $(grep token "$T/m2w.log")"
stop
AUTH="auth = token
token = test-token"

# --- a full store: 507, and the daemon goes on
say "full store"
S="$T/small"
start "$S" "map_initial = 256KiB
map_max = 1MiB"
big=$(head -c 50000 /dev/zero | tr '\0' 'x')
k=0
code=202
while [ "$code" = 202 ] && [ $k -lt 60 ]; do
	printf '{"type":"rest","payload":{"method":"POST","path":"/V1/nothing","body":{"blob":"%s-%d"}}}' "$big" $k >"$T/full.json"
	post application/json "$T/full.json"
	k=$((k + 1))
done
is "$code" 507 "a push into a full store"
resp .error | grep -q "full" || fail "507 without the store's message: $(cat "$T/resp")"
grep -q 'push.refused status=507' "$T/m2w.log" || fail "no push.refused line for 507"
kill -0 "$DPID" 2>/dev/null || fail "the daemon died of a full store"
code=$(curl -s -o /dev/null -w '%{http_code}' "$H/healthz")
is "$code" 200 "healthz with a full store"
# pages freed meanwhile (the records the workers rewrote) may take a push
# or two more; then it refuses again
k=0
post application/json "$T/full.json"
while [ "$code" = 202 ] && [ $k -lt 20 ]; do
	post application/json "$T/full.json"
	k=$((k + 1))
done
is "$code" 507 "full again"
stop

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
