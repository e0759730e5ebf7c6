#!/bin/sh
# enqueue.sh - qctl enqueue: the predecessors' sample files, duplicates on a
# second run, rejected rows (exit 1, FILE:LINE messages), stdin, NDJSON,
# --json, usage errors. The store comes from tests/mkstore (10 tasks).
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
QCTL="$top_builddir/tools/qctl/qctl"
MKSTORE="$top_builddir/tests/mkstore"
D="$top_srcdir/tests/data"
T=$(mktemp -d "${TMPDIR:-/tmp}/m2w-enqueue.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT INT TERM
S="$T/store"
. "$top_srcdir/tests/assert-lib.sh"

q() { "$QCTL" -d "$S" "$@"; }

command -v jq >/dev/null || { echo "jq missing: skipped"; exit 77; }
"$MKSTORE" "$S" || { echo "mkstore failed"; exit 99; }

# --- the tracking-updater sample (no trailing newline)
run 0 q enqueue --type tracking "$D/20250326_120000.csv"
has "accepted 1, duplicates 0, rejected 0"
run 0 q list --state ready --type tracking --json
is "$(jq -r '[.tasks[] | select(.source == $src)] | length' --arg src "$D/20250326_120000.csv:2" "$T/out")" 1 "tracking task"
is "$(jq -r '.tasks[] | select(.source == $src) | .idempotency_key' --arg src "$D/20250326_120000.csv:2" "$T/out")" \
	"tracking:1000000001:1ZX23456789" "tracking key"
id=$(jq -r '.tasks[] | select(.source == $src) | .id' --arg src "$D/20250326_120000.csv:2" "$T/out")
run 0 q show "$id" --json
is "$(jq -c .payload "$T/out")" '{"order":"1000000001","track":"1ZX23456789","carrier":"ups","title":"UPS"}' "tracking payload"
# again: a duplicate, exit 0
run 0 q enqueue --type tracking "$D/20250326_120000.csv"
has "accepted 0, duplicates 1, rejected 0"

# --- the go-m2rest stock sample
run 0 q enqueue --type stock "$D/stock_updates_example.csv"
has "accepted 5, duplicates 0, rejected 0"
run 0 q enqueue --type stock "$D/stock_updates_example.csv"
has "accepted 0, duplicates 5, rejected 0"
run 0 q list --state ready --type stock --limit 100 --json
is "$(jq -r '[.tasks[] | select(.ordering_key == "stock:bulk-product-1748595659-3:default")] | length' "$T/out")" 1 "stock group"

# --- rejected rows: exit 1, FILE:LINE: column: reason, good rows in
run 1 q enqueue --type stock "$D/bad_rows.csv"
has "accepted 3, duplicates 0, rejected 6"
errhas "$D/bad_rows.csv:3: qty: qty \"abc\" is not a number"
errhas "$D/bad_rows.csv:4: sku: sku is empty"
errhas "$D/bad_rows.csv:6: row has 3 fields, the header 2"
errhas "$D/bad_rows.csv:9: bad quoting"

# --- a header without a needed column: nothing enqueued, exit 1
printf 'tracking_number,carrier\n1Z1,ups\n' >"$T/nohdr.csv"
before=$(q stats --json | jq '.totals | add')
run 1 q enqueue --type tracking "$T/nohdr.csv"
errhas "nohdr.csv:1: header has no order column: expected one of order_number, order_id, increment_id"
is "$(q stats --json | jq '.totals | add')" "$before" "nothing enqueued on a header error"

# --- stdin, '-' and nothing; other delimiters; BOM; CRLF
run 0 q enqueue --type tracking - <"$D/bom.csv"
has "accepted 2, duplicates 0, rejected 0"
run 0 q enqueue --type tracking <"$D/crlf.csv"
has "accepted 2"
printf 'sku;qty\nSTDIN-1;4\n' | q enqueue --type stock >"$T/out" 2>"$T/err" ||
	fail "stdin ; exit $?"
has "accepted 1"
# stdin has no fingerprint: the same stock rows again are new work
printf 'sku;qty\nSTDIN-1;4\n' | q enqueue --type stock >"$T/out" 2>&1
has "accepted 1, duplicates 0"
printf 'sku|qty\nX|1\n' | q enqueue --type stock --delimiter tab >"$T/out" 2>"$T/err"
is "$?" 1 "wrong delimiter exit"
run 0 q enqueue --type price --delimiter tab "$D/tab.tsv"
has "accepted 2"
run 1 sh -c "printf 'sku,qty\nE,1\nF,x\n' | '$QCTL' -d '$S' enqueue --type stock -"
errhas "stdin:3: qty: qty \"x\" is not a number"
has "accepted 1, duplicates 0, rejected 1"

# --- NDJSON (by name, and by --format), --key-field
run 1 q enqueue --type tracking "$D/tracking.ndjson"
has "accepted 3, duplicates 0, rejected 2"
errhas "tracking.ndjson:4: track: missing \"track\""
errhas "tracking.ndjson:5: not valid JSON"
printf '{"id":"erp-1","sku":"N-1","price":3.5}\n{"id":"erp-1","sku":"N-1","price":3.5}\n' >"$T/p.txt"
run 0 q enqueue --type price --format ndjson --key-field id "$T/p.txt"
has "accepted 1, duplicates 1, rejected 0"

# --- --json
run 1 q enqueue --type stock --json "$D/bad_rows.csv"
is "$(jq -r .accepted "$T/out")" 0 "json accepted (all seen)"
is "$(jq -r .duplicates "$T/out")" 3 "json duplicates"
is "$(jq -r .rejected "$T/out")" 6 "json rejected"
is "$(jq -r '.errors[0].line' "$T/out")" 3 "json error line"
is "$(jq -r '.errors[0].column' "$T/out")" qty "json error column"
is "$(jq -r '.errors[2].column' "$T/out")" null "json error without column"
is "$(jq -r '.fingerprint | length' "$T/out")" 64 "json fingerprint"
printf 'sku,qty\nJ-1,1\nJ-2,2\n' >"$T/j.csv"
run 0 q --json enqueue --type stock --batch 1 "$T/j.csv"
is "$(jq -r '.ids | length' "$T/out")" 2 "json ids"
is "$(jq -r '.error' "$T/out")" null "json error null"
jid=$(jq -r '.ids[1]' "$T/out")
run 0 q show "$jid" --json
is "$(jq -c .payload "$T/out")" '{"sku":"J-2","qty":2}' "json id is the task"
is "$(jq -r .source "$T/out")" "$T/j.csv:3" "source FILE:LINE"

# --- usage
run 2 q enqueue --type nosuch "$D/bom.csv";   errhas "unknown type"
run 2 q enqueue "$D/bom.csv"
run 2 q enqueue --type stock --format xml "$D/bom.csv"
run 2 q enqueue --type stock --batch 0 "$D/bom.csv"
run 2 q enqueue --type stock a b
run 1 q enqueue --type stock "$T/missing.csv"; errhas "missing.csv"
run 0 "$QCTL" help enqueue;                   has "key-field"

run 0 q check
echo "enqueue.sh: $n commands run, $fails failed"
[ "$fails" -eq 0 ]
