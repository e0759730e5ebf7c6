#!/bin/sh
# chaos.sh - the whole system under SIGKILL. Two producers feed the daemon
# while it works against the fake Magento with 5% injected 503s:
#   - files: tracking CSV files in tracking-updater's format, written under
#     NAME.tmp and renamed into the [watch] directory;
#   - HTTP: pushes of JSON arrays, NDJSON and CSV to /v1/tasks; a row counts
#     as accepted only when its push was answered 202 (a push refused or cut
#     off while the daemon is down is sent again until it is).
# Some rows are sent twice on purpose (in one file, in a file and a push, in
# two pushes), some are bad on purpose (a header the watcher refuses, a row
# without a tracking number, an order Magento does not know). Meanwhile a
# killer SIGKILLs the daemon at random moments and starts it again.
# After the last restart the producers stop, the daemon drains, and then:
#   - every accepted row has exactly one task, done, or dead with its error
#     (only the unknown orders are dead); nothing is left pending;
#   - the fake Magento holds every accepted tracking number exactly once, on
#     its order, and no order has more than one shipment;
#   - every file ended in processed/ (rejected rows listed in failed/), the
#     bad one in failed/ with its reason; incoming/ is empty;
#   - the daemon stops cleanly and `qctl check` passes.
# Nothing depends on timing: waits are bounded and generous, and the kill
# moments only decide what is in flight.
#
#   M2W_CHAOS_KILLS=N   kills (default 5, for make check; 50 for a long run)
#   M2W_CHAOS_SEED=S    the seed of every random choice (printed at start)
set -u
LC_ALL=C; export LC_ALL

. "${top_srcdir:-.}/tests/daemon-lib.sh"
KILLS=${M2W_CHAOS_KILLS:-5}
SEED=${M2W_CHAOS_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
NORD=3000                 # orders of the fake; tracks wrap onto them
TOKEN=chaos-push-token
lib_setup chaos
echo "chaos: $KILLS kills, seed $SEED (repeat with M2W_CHAOS_SEED=$SEED)"
t_start=$(date +%s)

lib_fake --orders $NORD --products 20 --fail-rate 0.05 --fail-status 503 --seed "$SEED"

IN="$T/3pl/incoming"; PROC="$T/3pl/processed"; FAILD="$T/3pl/failed"
mkdir -p "$IN"
config() {
	cat >"$T/m2w.conf" <<EOF
[store]
path = $S
[magento]
base_url = $F
auth = token
token = test-token
timeout = 5s
[workers]
threads = 4
shutdown_grace = 5s
reap_interval = 200ms
[breaker]
failures = 8
cooldown = 1s
[log]
level = info
file = $T/m2w.log
[tracking]
backoff_base = 100ms
backoff_cap = 500ms
lease = 2s
max_attempts = 40
[http]
enabled = yes
listen = 127.0.0.1
port = $HP
tokens = $TOKEN
timeout = 10s
[watch "3pl"]
path = $IN
type = tracking
settle = 1s
poll_interval = 300ms
EOF
}

# start: the daemon, on the port of the first start (picked at random)
start() {
	if [ -n "${HP:-}" ]; then
		config
		lib_start_http "$T/m2w.conf" && return 0
	else
		tries=0
		while [ $tries -lt 20 ]; do
			tries=$((tries + 1))
			HP=$(lib_pick_port)
			config
			lib_start_http "$T/m2w.conf" && return 0
			grep -q "no libmicrohttpd" "$T/m2w.log" &&
				{ echo "m2worker built without HTTP: skipped"; exit 77; }
			grep -q "cannot listen" "$T/m2w.log" || break
		done
	fi
	fail "the daemon did not start (port $HP)"
	exit 1
}

# rnd KEY LO HI: a number in [LO, HI) drawn from the seed and KEY
rnd() { awk -v s="$SEED" -v k="$1" -v lo="$2" -v hi="$3" 'BEGIN { srand(s * 7919 + k); printf "%.3f", lo + rand() * (hi - lo) }'; }
# rows PREFIX FIRST N: N rows "order,track" from track number FIRST
rows() { awk -v p="$1" -v f="$2" -v n="$3" -v o="$NORD" 'BEGIN { for (i = f; i < f + n; i++) printf "%d,%s%07d\n", 1000000000 + (i * 7) % o + 1, p, i }'; }
perr() { echo "$*" >>"$T/producer.err"; }

# --- the file producer: one file every 0.1..0.5 s
file_producer() {
	f=0; n=1
	while [ ! -e "$T/stop" ]; do
		f=$((f + 1))
		name=$(printf 'chaos_%05d.csv' $f)
		if [ $((f % 11)) = 5 ]; then            # a header to refuse
			printf 'foo,bar\n1,2\n' >"$IN/$name.tmp"
			mv "$IN/$name.tmp" "$IN/$name"
			echo "$name" >>"$T/files.bad"
			sleep "$(rnd "1$f" 0.1 0.5)"
			continue
		fi
		k=$(rnd "2$f" 3 30); k=${k%.*}
		rows 1ZCF "$n" "$k" >"$T/f.rows"; n=$((n + k))
		[ $((f % 3)) = 0 ] && [ -s "$T/acc.http" ] && tail -n 1 "$T/acc.http" >>"$T/f.rows"
		[ $((f % 4)) = 0 ] && head -n 1 "$T/f.rows" >>"$T/f.rows"
		{
			echo "order_number,tracking_number,carrier_code,title"
			sed 's/$/,ups,UPS/' "$T/f.rows"
			# an order Magento does not know: dead with its message
			[ $((f % 7)) = 0 ] && printf '%d,1ZBAD%05d,ups,UPS\n' $((900000000 + f)) $f
			# no tracking number: a rejected row
			[ $((f % 9)) = 0 ] && printf '1000000001,,ups,UPS\n'
		} >"$IN/$name.tmp"
		mv "$IN/$name.tmp" "$IN/$name"
		cat "$T/f.rows" >>"$T/acc.file"
		[ $((f % 7)) = 0 ] && printf '%d,1ZBAD%05d\n' $((900000000 + f)) $f >>"$T/acc.dead"
		[ $((f % 9)) = 0 ] && echo "$name" >>"$T/files.rejects"
		echo "$name" >>"$T/files.good"
		sleep "$(rnd "1$f" 0.1 0.5)"
	done
}

# push BODY CTYPE QUERY: until answered 202 (503 or no answer: the daemon is
# down or stopping; anything else is a failure). 0 when accepted.
push() {
	tries=0
	while :; do
		code=$(curl -s -m 15 -o "$T/h.resp" -w '%{http_code}' \
			-H "Authorization: Bearer $TOKEN" -H "Content-Type: $2" \
			--data-binary "@$1" "$H/v1/tasks$3")
		case $code in
		202) return 0 ;;
		000|503) ;;
		5*) perr "push answered $code: $(cat "$T/h.resp")" ;;
		*) perr "push answered $code: $(cat "$T/h.resp")"; return 1 ;;
		esac
		tries=$((tries + 1))
		[ -e "$T/abort" ] && return 1
		[ $tries -gt 900 ] && { perr "push never accepted (900 tries)"; return 1; }
		sleep 0.1
	done
}

# --- the HTTP producer: a push of 1..20 rows every 0.05..0.3 s
http_producer() {
	b=0; n=1
	while [ ! -e "$T/stop" ]; do
		b=$((b + 1))
		k=$(rnd "3$b" 1 21); k=${k%.*}
		rows 1ZCH "$n" "$k" >"$T/h.rows"; n=$((n + k))
		[ $((b % 3)) = 0 ] && [ -s "$T/acc.file" ] && tail -n 1 "$T/acc.file" >>"$T/h.rows"
		case $((b % 3)) in
		0)	ctype=application/json; query=
			awk -F, 'BEGIN { printf "[" } { printf "%s{\"type\":\"tracking\",\"payload\":{\"order\":\"%s\",\"track\":\"%s\",\"carrier\":\"ups\"}}", (NR > 1 ? "," : ""), $1, $2 } END { print "]" }' \
				"$T/h.rows" >"$T/h.body" ;;
		1)	ctype=application/x-ndjson; query=
			awk -F, '{ printf "{\"type\":\"tracking\",\"payload\":{\"order\":\"%s\",\"track\":\"%s\",\"carrier\":\"UPS\"}}\n", $1, $2 }' \
				"$T/h.rows" >"$T/h.body" ;;
		2)	ctype=text/csv; query='?type=tracking'
			{ echo "Order Number;Tracking Number;Carrier"; sed 's/,/;/; s/$/;ups/' "$T/h.rows"; } >"$T/h.body" ;;
		esac
		if push "$T/h.body" "$ctype" "$query"; then
			cat "$T/h.rows" >>"$T/acc.http"
			got=$(jq '(.accepted | length) + (.duplicates | length)' "$T/h.resp")
			[ "$got" -ge 1 ] || perr "a 202 with nothing accepted: $(cat "$T/h.resp")"
			# now and then the same body again: all duplicates
			if [ $((b % 5)) = 0 ] && push "$T/h.body" "$ctype" "$query"; then
				[ "$(jq '.accepted | length' "$T/h.resp")" = 0 ] ||
					perr "the same push again made new tasks: $(cat "$T/h.resp")"
			fi
		else
			cat "$T/h.rows" >>"$T/unconfirmed"
		fi
		sleep "$(rnd "4$b" 0.05 0.3)"
	done
}

say "start"
: >"$T/acc.file"; : >"$T/acc.http"; : >"$T/acc.dead"; : >"$T/files.good"
: >"$T/files.bad"; : >"$T/files.rejects"; : >"$T/unconfirmed"
start
PF=; PH=
# on the way out, producers stop at once (a dead daemon would keep them
# retrying): their pushes give up when $T/abort exists
trap 'touch "$T/stop" "$T/abort"; [ -n "$PF$PH" ] && kill $PF $PH 2>/dev/null; lib_cleanup' EXIT INT TERM
file_producer & PF=$!
http_producer & PH=$!

say "SIGKILL x $KILLS"
k=0
while [ $k -lt "$KILLS" ]; do
	k=$((k + 1))
	sleep "$(rnd "5$k" 0.2 2.5)"
	kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	echo "kill $k of $KILLS: $(lib_q stats --json | jq -c '.totals')"
	sleep "$(rnd "6$k" 0 0.5)"
	# one restart in four is killed again while it starts up
	if [ "$(rnd "7$k" 0 4)" \< 1 ]; then
		"$M2W" -c "$T/m2w.conf" & DPID=$!
		sleep "$(rnd "8$k" 0 0.3)"
		kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	fi
	start
done

say "stop the producers, drain"
touch "$T/stop"
wait "$PF" "$PH"; PF=; PH=
i=0
while [ -n "$(ls -A "$IN")" ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
[ -z "$(ls -A "$IN")" ] || fail "files left in incoming/ after 60 s: $(ls -A "$IN" | head)"
lib_wait_drained 180
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
is "$rc" 0 "the daemon's exit status at SIGTERM"

say "check"
[ -s "$T/producer.err" ] && fail "producers: $(sort "$T/producer.err" | uniq -c | head -20)"
[ -s "$T/unconfirmed" ] && fail "$(wc -l <"$T/unconfirmed") rows never accepted over HTTP"
sort -u "$T/acc.file" "$T/acc.http" >"$T/acc.all"
sort -u "$T/acc.dead" >"$T/exp.dead"
comm -23 "$T/acc.all" "$T/exp.dead" >"$T/exp.done"
sent=$(cat "$T/acc.file" "$T/acc.http" "$T/acc.dead" | wc -l)
uniq_rows=$(cat "$T/acc.all" "$T/exp.dead" | sort -u | wc -l)
echo "rows accepted: $(wc -l <"$T/acc.file") in $(wc -l <"$T/files.good") files, $(wc -l <"$T/acc.http") pushed, $(wc -l <"$T/acc.dead") to unknown orders; $((sent - uniq_rows)) sent twice on purpose; $uniq_rows distinct"

# the tasks: one per distinct row, done or dead, nothing pending
is "$(lib_pending)" 0 "tasks pending at the end"
for st in done dead superseded; do
	lib_q list --state $st --type tracking --limit 100000 --json >"$T/list.$st" ||
		fail "qctl list --state $st"
done
# a tracking task's key is tracking:ORDER:TRACK
pairs() { jq -r '.tasks[] | .idempotency_key | split(":") | "\(.[1]),\(.[2])"' "$1" | sort; }
pairs "$T/list.done" >"$T/got.done"
pairs "$T/list.dead" >"$T/got.dead"
is "$(jq '.tasks | length' "$T/list.superseded")" 0 "superseded tracking tasks"
is "$(cat "$T/got.done" "$T/got.dead" | wc -l)" "$uniq_rows" "tracking tasks (one per distinct row)"
is "$(cat "$T/got.done" "$T/got.dead" | sort | uniq -d | wc -l)" 0 "rows with more than one task"
missing=$(cat "$T/got.done" "$T/got.dead" | sort | comm -23 "$T/acc.all" - | head -5)
[ -z "$missing" ] || fail "accepted rows without a finished task: $missing"
missing=$(cat "$T/got.done" "$T/got.dead" | sort | comm -23 "$T/exp.dead" - | head -5)
[ -z "$missing" ] || fail "rows of unknown orders without a task: $missing"
extra=$(cat "$T/got.done" "$T/got.dead" | sort | comm -13 "$T/acc.all" - | comm -23 - "$T/exp.dead" | head -5)
[ -z "$extra" ] || fail "tasks of rows nobody sent: $extra"
wrong=$(comm -3 "$T/got.dead" "$T/exp.dead" | head -5)
[ -z "$wrong" ] || fail "dead tasks are not exactly the unknown orders: $wrong"
is "$(jq '[.tasks[] | select((.last_error // "") == "")] | length' "$T/list.dead")" 0 "dead tasks without an error text"

# Magento: every accepted track once, on its order; one shipment per order
state >"$T/state.json"
jq -r '.tracks | to_entries[] | select(.value != 1) | "\(.key)=\(.value)"' "$T/state.json" >"$T/twice"
[ -s "$T/twice" ] && fail "tracking numbers posted more than once: $(head -5 "$T/twice")"
jq -r '.orders | to_entries[] | .key as $o | .value.shipments[].tracks[] | "\($o),\(.track_number)"' \
	"$T/state.json" | sort >"$T/magento.pairs"
diff "$T/exp.done" "$T/magento.pairs" >"$T/pairs.diff" ||
	fail "Magento's (order, track) pairs differ from the accepted rows (< missing, > extra): $(head -10 "$T/pairs.diff")"
jq -r '.shipments_per_order | to_entries[] | select(.value != 1) | "\(.key)=\(.value)"' "$T/state.json" >"$T/shipped"
[ -s "$T/shipped" ] && fail "orders shipped more than once: $(head -5 "$T/shipped")"
is "$(jq '.shipments_per_order | length' "$T/state.json")" "$(cut -d, -f1 "$T/exp.done" | sort -u | wc -l)" "orders shipped"

# the files
for name in $(cat "$T/files.good"); do
	[ -e "$PROC/$name" ] || fail "$name not in processed/"
done
for name in $(cat "$T/files.rejects"); do
	[ -e "$FAILD/$name.errors.csv" ] || fail "no failed/$name.errors.csv for its rejected row"
done
for name in $(cat "$T/files.bad"); do
	[ -e "$FAILD/$name" ] && [ -e "$FAILD/$name.reason.txt" ] ||
		fail "$name (bad header) not in failed/ with a reason"
done
extra=$(ls "$PROC" | grep -v '^chaos_[0-9]*\.csv$' | head -5)
[ -z "$extra" ] && [ "$(ls "$PROC" | wc -l)" = "$(wc -l <"$T/files.good")" ] ||
	echo "note: processed/ holds $(ls "$PROC" | wc -l) files for $(wc -l <"$T/files.good") dropped: $extra"

lib_q check >"$T/check.out" 2>&1 || fail "qctl check: $(cat "$T/check.out")"
echo "tasks: $(wc -l <"$T/got.done") done, $(wc -l <"$T/got.dead") dead; $(jq '.shipments_total' "$T/state.json") shipments; $(jq '.total_requests' "$T/state.json") requests to Magento; $(( $(date +%s) - t_start )) s"
echo "chaos.sh: $fails failed (seed $SEED)"
[ "$fails" -eq 0 ]
