#!/bin/sh
# watch.sh - CSV directories ([watch] sections) in the daemon, against the
# fake Magento: files already there at start, the tracking-updater sample
# and pattern, rejected rows (failed/NAME.errors.csv), an unusable header
# (failed/ + reason file), the same content dropped again, a name clash in
# processed/, a file still being written, dot and .tmp files, a BOM file, a
# ';' file, poll mode, and SIGKILL in the middle of a 100,000-row file
# (exactly 100,000 tasks after the restart, qctl check clean), and SIGTERM
# in the middle of another (resumed at the next start).
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
D="$top_srcdir/tests/data"
SAMPLES="$top_srcdir/contrib/samples"
lib_setup watch

# --- the fake Magento
lib_fake --orders 400 --products 50

# --- configuration: settle 1 s, quick scans
mkdir -p "$T/3pl/incoming" "$T/stock/incoming"
cat >"$T/m2w.conf" <<EOF
[store]
path = $S
[magento]
base_url = $F
auth = token
token = test-token
timeout = 3s
[workers]
threads = 4
shutdown_grace = 3s
reap_interval = 200ms
[log]
level = debug
file = $T/m2w.log
[tracking]
backoff_base = 100ms
backoff_cap = 400ms
[stock]
backoff_base = 100ms
backoff_cap = 400ms
[price]
backoff_base = 100ms
backoff_cap = 400ms

# tracking-updater's directory habits and pattern
[watch "3pl"]
path = $T/3pl/incoming
type = tracking
pattern = ^\d{8}_\d{6}\.csv$
settle = 1s
poll_interval = 200ms

[watch "stock"]
path = $T/stock/incoming
type = stock
settle = 1s
poll_interval = 200ms

# poll mode, any name (the ignore rules still apply); directories made
[watch "price"]
path = $T/price/in
processed = $T/price/done
failed = $T/price/bad
type = price
pattern = *
mode = poll
settle = 1s
poll_interval = 300ms

[watch "bulk"]
path = $T/bulk/incoming
type = stock
settle = 1s
poll_interval = 200ms
EOF
"$M2W" -c "$T/m2w.conf" --check-config >/dev/null || { fail "config"; exit 1; }

start() { "$M2W" -c "$T/m2w.conf" & DPID=$!; }
stop() { # SIGTERM, and the daemon must exit 0 (sanitizers report by exit status)
	[ -n "$DPID" ] || return 0
	kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
	[ "$rc" -eq 0 ] || fail "daemon exited with status $rc"
}
q() { "$QCTL" -d "$S" "$@"; }
total() { q stats --json | jq -r ".totals.$1"; }
tasks() { q stats --json | jq -r '[.totals[]] | add'; }
pending() { q stats --json | jq -r '.totals | .ready + .scheduled + .leased + .waiting'; }
wait_drained() {
	i=0
	while [ "$(pending)" != 0 ]; do
		i=$((i + 1))
		[ $i -gt $(($1 * 10)) ] && { fail "not drained after $1 s: $(q stats --json | jq -c .totals)"; return 1; }
		sleep 0.1
	done
}
# wait_file PATH SECONDS
wait_file() {
	i=0
	while [ ! -e "$1" ]; do
		i=$((i + 1))
		[ $i -gt $(($2 * 10)) ] && { fail "no $1 after $2 s"; return 1; }
		sleep 0.1
	done
}
# wait_log PATTERN SECONDS: until the daemon logged it
wait_log() {
	i=0
	while ! grep -q -- "$1" "$T/m2w.log"; do
		i=$((i + 1))
		[ $i -gt $(($2 * 10)) ] && { fail "no log line '$1' after $2 s"; return 1; }
		sleep 0.1
	done
}
# drop FILE DIR/NAME: written under a .tmp name, renamed in
drop() { cp "$1" "$2.tmp" && mv "$2.tmp" "$2"; }

I3="$T/3pl/incoming"; P3="$T/3pl/processed"; F3="$T/3pl/failed"
IS="$T/stock/incoming"; PS="$T/stock/processed"; FS="$T/stock/failed"

# --- 1. files already there at start, the predecessor's pattern
say "files there at start, tracking-updater pattern"
cp "$D/20250326_120000.csv" "$I3/"
cp "$SAMPLES/20250326_130000.csv" "$I3/notes.csv"     # no match: stays
cp "$SAMPLES/stock.csv" "$IS/stock.csv"
start
wait_file "$P3/20250326_120000.csv" 10
wait_file "$PS/stock.csv" 10
[ -d "$T/price/in" ] && [ -d "$T/price/done" ] && [ -d "$T/price/bad" ] ||
	fail "directories of [watch \"price\"] not made"
wait_drained 20
state >"$T/state.json"
is "$(jq -r '.tracks["1ZX23456789"]' "$T/state.json")" 1 "sample's track in Magento"
is "$(jq -r '.stock["SKU-2"].default.quantity' "$T/state.json")" 75 "stock.csv in Magento"
is "$(( $(total done) + $(total superseded) ))" 6 "tasks done or superseded"
[ -e "$I3/notes.csv" ] || fail "notes.csv (not matching the pattern) was taken"
wait_log 'file.done watch=3pl file=20250326_120000.csv rows=1 accepted=1 duplicates=0 rejected=0' 5

# --- 2. rejected rows
say "rejected rows"
drop "$D/bad_rows.csv" "$IS/bad_rows.csv"
wait_file "$PS/bad_rows.csv" 10
wait_file "$FS/bad_rows.csv.errors.csv" 5
E="$FS/bad_rows.csv.errors.csv"
is "$(head -n 1 "$E")" "line,column,reason,row" "errors file header"
grep -q '^3,qty,.*,"BAD-QTY,abc"$' "$E" || fail "BAD-QTY not in the errors file: $(cat "$E")"
grep -q '^6,,.*,"TOO,MANY,FIELDS"$' "$E" || fail "TOO,MANY,FIELDS (line 6) not in the errors file"
wait_log 'file.done watch=stock file=bad_rows.csv' 5
rej=$(grep -o 'file.done watch=stock file=bad_rows.csv [^m]*' "$T/m2w.log" | sed 's/.*rejected=\([0-9]*\).*/\1/')
is "$(($(wc -l <"$E") - 1))" "$rej" "errors file lines = rejected rows"
wait_log 'file.rejected_rows watch=stock file=bad_rows.csv' 5
wait_drained 20   # GOOD-3 is no product of the fake: dead
is "$(q list --state dead --grep GOOD-3 --json | jq '[.tasks[] | select(.source == "bad_rows.csv:11")] | length')" 1 "good row after bad ones"
ls -a "$FS" | grep -q '\.part$' && fail "errors part file left behind"

# --- 3. a header that will not do
say "unusable header"
printf 'foo,bar\n1,2\n' >"$T/nohdr.csv"
drop "$T/nohdr.csv" "$IS/nohdr.csv"
wait_file "$FS/nohdr.csv.reason.txt" 10
[ -e "$FS/nohdr.csv" ] || fail "nohdr.csv not in failed/"
grep -q 'header has no sku column' "$FS/nohdr.csv.reason.txt" || fail "reason: $(cat "$FS/nohdr.csv.reason.txt")"
wait_log 'file.failed watch=stock file=nohdr.csv' 5

# --- 4. the same content again, under another name
say "same content dropped twice"
n0=$(tasks)
drop "$SAMPLES/stock.csv" "$IS/stock-again.csv"
wait_file "$PS/stock-again.csv" 10
wait_log 'file.seen_before watch=stock file=stock-again.csv .*first_name=stock.csv' 5
is "$(tasks)" "$n0" "tasks after the same content again"

# --- 5. a name clash in processed/: a suffix, nothing overwritten
say "name clash"
printf 'sku,qty\nSKU-3,33\n' >"$T/stock2.csv"
drop "$T/stock2.csv" "$IS/stock.csv"
wait_file "$PS/stock.1.csv" 10
cmp -s "$PS/stock.csv" "$SAMPLES/stock.csv" || fail "processed/stock.csv overwritten"
cmp -s "$PS/stock.1.csv" "$T/stock2.csv" || fail "processed/stock.1.csv is not the second file"

# --- 6. a file still being written is not taken early
say "file still being written"
printf 'sku,qty\nSKU-41,1\n' >"$IS/slow.csv"
sleep 0.6
[ -e "$IS/slow.csv" ] || fail "slow.csv taken 0.6 s after its first write (settle 1 s)"
printf 'SKU-42,2\n' >>"$IS/slow.csv"
sleep 0.6
[ -e "$IS/slow.csv" ] || fail "slow.csv taken 0.6 s after its second write"
printf 'SKU-43,3\n' >>"$IS/slow.csv"
wait_file "$PS/slow.csv" 10
wait_log 'file.done watch=stock file=slow.csv rows=3 accepted=3' 5

# --- 7. BOM, ';', poll mode, dot and .tmp files
say "BOM, semicolon, poll mode, ignored names"
drop "$D/bom.csv" "$I3/20250326_140000.csv"
printf 'sku;qty;source_code\nSKU-7;7;warehouse-2\n"SKU-8";"8";default\n' >"$T/semicolon.csv"
drop "$T/semicolon.csv" "$IS/semicolon.csv"
cp "$SAMPLES/price.csv" "$T/price/in/.hidden.csv"
cp "$SAMPLES/price.csv" "$T/price/in/prices.tmp"
cp "$SAMPLES/price.csv" "$T/price/in/prices"            # pattern *: taken
wait_file "$P3/20250326_140000.csv" 10
wait_file "$PS/semicolon.csv" 10
wait_file "$T/price/done/prices" 10
wait_drained 20
state >"$T/state.json"
is "$(jq -r '.tracks["1ZBOM0002"]' "$T/state.json")" 1 "BOM file's track"
is "$(jq -r '.stock["SKU-7"]["warehouse-2"].quantity' "$T/state.json")" 7 "';' file's stock"
is "$(jq -r '.stock["SKU-8"].default.quantity' "$T/state.json")" 8 "';' file's quoted stock"
is "$(jq -r '.stock["SKU-43"].default.quantity' "$T/state.json")" 3 "slow file's last row"
is "$(jq -r '.prices["SKU-2"]["0"]' "$T/state.json")" 24.5 "poll mode's price"
sleep 1.5
[ -e "$T/price/in/.hidden.csv" ] || fail ".hidden.csv taken"
[ -e "$T/price/in/prices.tmp" ] || fail "prices.tmp taken"
[ -e "$I3/notes.csv" ] || fail "notes.csv taken"
# dead: the 3 good rows of bad_rows.csv (no such products) and SKU-404
is "$(total dead)" 4 "dead tasks"

# --- 8. SIGKILL in the middle of a 100,000-row file
say "SIGKILL in the middle of 100,000 rows"
q pause stock >/dev/null || fail "pause stock"
n0=$(tasks)
awk 'BEGIN { print "sku,qty"; for (i = 1; i <= 100000; i++) printf "BULK-%06d,%d\n", i, i % 100 }' >"$T/bulk.csv"
mkdir -p "$T/bulk/incoming"
cp "$T/bulk.csv" "$T/bulk/incoming/.bulk.csv" && mv "$T/bulk/incoming/.bulk.csv" "$T/bulk/incoming/bulk.csv"
i=0
while [ "$(tasks)" -le "$n0" ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
mid=$(( $(tasks) - n0 ))
echo "killed with $mid of 100000 rows in"
[ "$mid" -gt 0 ] || fail "nothing committed before the kill"
[ -e "$T/bulk/incoming/bulk.csv" ] || echo "note: the file was finished before the kill"
start
wait_file "$T/bulk/processed/bulk.csv" 60
is "$(( $(tasks) - n0 ))" 100000 "tasks from the 100,000-row file"
if [ "$mid" -lt 100000 ]; then
	wait_log 'file.resume watch=bulk file=bulk.csv' 5
	wait_log 'file.done watch=bulk file=bulk.csv rows=100000 accepted=100000 duplicates=0 rejected=0' 5
fi

# --- 9. SIGTERM in the middle: the file stops at a batch, resumes at start
say "SIGTERM in the middle of 100,000 rows"
n0=$(tasks)
awk 'BEGIN { print "sku,qty"; for (i = 1; i <= 100000; i++) printf "TERM-%06d,%d\n", i, i % 100 }' >"$T/bulk2.csv"
cp "$T/bulk2.csv" "$T/bulk/incoming/.bulk2.csv" && mv "$T/bulk/incoming/.bulk2.csv" "$T/bulk/incoming/bulk2.csv"
i=0
while [ "$(tasks)" -le "$n0" ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done
stop
mid=$(( $(tasks) - n0 ))
echo "stopped with $mid of 100000 rows in"
if [ -e "$T/bulk/incoming/bulk2.csv" ]; then
	grep -q 'file.interrupted watch=bulk file=bulk2.csv' "$T/m2w.log" || fail "no file.interrupted line"
fi
start
wait_file "$T/bulk/processed/bulk2.csv" 60
is "$(( $(tasks) - n0 ))" 100000 "tasks from the second 100,000-row file"
stop
q check >"$T/check.out" 2>&1 || fail "qctl check: $(cat "$T/check.out")"

[ "$fails" -eq 0 ] && echo "all passed"
[ "$fails" -eq 0 ]
