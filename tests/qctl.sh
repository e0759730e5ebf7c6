#!/bin/sh
# qctl.sh - every qctl command and flag against a store filled through the
# library (tests/mkstore: one task in each state, ids fixed, see mkstore.c).
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
QCTL="$top_builddir/tools/qctl/qctl"
MKSTORE="$top_builddir/tests/mkstore"
T=$(mktemp -d "${TMPDIR:-/tmp}/m2w-qctl.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT INT TERM
S="$T/store"
. "$top_srcdir/tests/assert-lib.sh"

ids() { # STATE -> ids as "a,b,c"
	ids_in "$S" "$1"
}
ids_in() { # STORE STATE -> ids as "a,b,c"
	"$QCTL" -d "$1" list --state "$2" --limit 1000 --json |
		jq -r '[.tasks[].id] | map(tostring) | join(",")'
}

"$MKSTORE" "$S" || { echo "mkstore failed"; exit 99; }
command -v jq >/dev/null || { echo "jq missing: skipped"; exit 77; }

# --- help, version, usage errors
run 0 "$QCTL" help;                 has "requeue"; has "backup"
run 0 "$QCTL" help list;            has "--after CURSOR"
run 2 "$QCTL" help nosuch;          errhas "no command"
run 2 "$QCTL";                      has "usage"
run 2 "$QCTL" -d "$S" nosuch;       errhas "no command"
run 0 "$QCTL" version;              has "schema 1"
run 0 "$QCTL" --json version
is "$(jq -r .schema "$T/out")" 1 "version --json schema"
run 1 "$QCTL" -d "$T/none" stats;   errhas "no store at"
run 2 "$QCTL" -d "$S" show abc
run 2 "$QCTL" -d "$S" list --state nosuch; errhas "no state"
run 2 "$QCTL" -d "$S" list --since "last week"; errhas "bad time"
run 2 "$QCTL" -d "$S" list --until 2026-13-01;    errhas "bad time"

# --- finding the store: -d, the environment, the config file
run 0 env M2WORKER_STORE="$S" "$QCTL" stats; has tracking
printf '[magento]\nbase_url = http://x\n\n[store]\npath = %s\n' "$S" >"$T/m2w.conf"
run 0 "$QCTL" -c "$T/m2w.conf" stats; has tracking
run 2 "$QCTL" -c "$T/missing.conf" stats

# --- stats
run 0 "$QCTL" -d "$S" stats
has "tracking"; has "superseded"; has "MiB used"
run 0 "$QCTL" -d "$S" stats --json
is "$(jq -r '.totals.dead' "$T/out")" 2 "stats dead total"
is "$(jq -r '.totals.ready' "$T/out")" 3 "stats ready total"
is "$(jq -r '.totals.scheduled' "$T/out")" 1 "stats scheduled"
is "$(jq -r '.totals.waiting' "$T/out")" 1 "stats waiting"
is "$(jq -r '.types[] | select(.type=="tracking") | .counts.leased' "$T/out")" 1 "stats leased tracking"

# --- list: every state, filters, paging
is "$(ids ready)" "5,7,9" "ready"
is "$(ids scheduled)" "3" "scheduled"
is "$(ids leased)" "4" "leased"
is "$(ids waiting)" "10" "waiting"
is "$(ids done)" "1" "done"
is "$(ids dead)" "2,8" "dead"
is "$(ids superseded)" "6" "superseded"
run 0 "$QCTL" -d "$S" list --state dead --type price --json
is "$(jq -r '[.tasks[].id]|map(tostring)|join(",")' "$T/out")" "8" "list --type"
run 0 "$QCTL" -d "$S" list --state dead --grep "does not allow" --json
is "$(jq -r '[.tasks[].id]|map(tostring)|join(",")' "$T/out")" "2" "list --grep"
run 0 "$QCTL" -d "$S" list --state dead --since 1h --json
is "$(jq -r '.tasks|length' "$T/out")" 2 "list --since"
hour_ago=$(date -d '1 hour ago' '+%Y-%m-%d %H:%M')
run 0 "$QCTL" -d "$S" list --state dead --since "$hour_ago" --json
is "$(jq -r '.tasks|length' "$T/out")" 2 "list --since DATE TIME"
run 0 "$QCTL" -d "$S" list --state dead --until "$hour_ago" --json
is "$(jq -r '.tasks|length' "$T/out")" 0 "list --until DATE TIME"
run 0 "$QCTL" -d "$S" list --state dead --since 2000-01-01 --until 2000-01-02 --json
is "$(jq -r '.tasks|length' "$T/out")" 0 "list --since DAY --until DAY"
run 0 "$QCTL" -d "$S" list --state dead --since yesterday --json
is "$(jq -r '.tasks|length' "$T/out")" 2 "list --since yesterday"
run 0 "$QCTL" -d "$S" list --state ready --limit 2 --json
is "$(jq -r '[.tasks[].id]|map(tostring)|join(",")' "$T/out")" "5,7" "page 1"
cursor=$(jq -r .next "$T/out")
[ "$cursor" != null ] || fail "no cursor after a full page"
run 0 "$QCTL" -d "$S" list --state ready --limit 2 --after "$cursor" --json
is "$(jq -r '[.tasks[].id]|map(tostring)|join(",")' "$T/out")" "9" "page 2"
is "$(jq -r .next "$T/out")" null "last page cursor"
run 0 "$QCTL" -d "$S" list --state ready --limit 2 --json
is "$(jq -r '.tasks[0] | [.type, .payload.order, .payload.track] | join(" ")' "$T/out")" \
	"tracking 1000000005 1ZTRACK5" "list --json: a tracking task's payload, an object"
jq -c '.tasks[] | select(.id == 5) | .payload' "$T/out" >"$T/list5"
run 0 "$QCTL" -d "$S" show 5 --json
is "$(jq -c .payload "$T/out")" "$(cat "$T/list5")" "list --json: the payload as show prints it"
run 0 "$QCTL" -d "$S" list --state ready --limit 2; has "more: qctl list"
run 2 "$QCTL" -d "$S" list --after zz
run 0 "$QCTL" -d "$S" list --state dead; has "Validation Error"; has "price"

# --- errors: the dead letters grouped (here 2, tracking, and 8, price)
track_err=$(printf 'Shipment Document Validation Error(s):\nThe order does not allow a shipment to be created.')
price_err='The SKU "NOPE" of the product that was requested doesn'"'"'t exist. Verify the product and try again.'
run 0 "$QCTL" -d "$S" errors
has "COUNT  TYPE"; has "Validation Error(s): The order"; has "2 dead tasks in 2 groups"
run 0 "$QCTL" -d "$S" errors --json
is "$(jq -r .scanned "$T/out")" 2 "errors --json scanned"
is "$(jq -r '[.groups[].type]|join(",")' "$T/out")" "price,tracking" "errors: the newest death first"
is "$(jq -r '.groups[0]|keys|join(",")' "$T/out")" "count,error,example_id,first_ms,last_ms,last_status,type" "errors --json keys"
is "$(jq -r '.groups[0]|[.count,.example_id,.last_status]|map(tostring)|join(",")' "$T/out")" "1,8,200" "errors: a group"
is "$(jq -r '.groups[1].error' "$T/out")" "$track_err" "errors --json: the whole error"
is "$(jq -r '.groups[1].last_status' "$T/out")" 400 "errors: status"
run 0 "$QCTL" -d "$S" errors --type price --json
is "$(jq -r '[.groups[].example_id]|map(tostring)|join(",")' "$T/out")" 8 "errors --type"
run 0 "$QCTL" -d "$S" errors --limit 1
has "2 dead tasks; the 1 largest groups shown hold 1"
run 0 "$QCTL" -d "$S" errors --since 2099-01-01; has "no dead tasks"
run 0 "$QCTL" -d "$S" errors --since 1h --json
is "$(jq -r .scanned "$T/out")" 2 "errors --since 1h"
run 2 "$QCTL" -d "$S" errors --since "last week"; errhas "bad time"
run 2 "$QCTL" -d "$S" errors --limit 0
run 0 "$QCTL" -d "$S" requeue --dead --error "$track_err" --dry-run; has "would requeue 1 task: 2"
run 0 "$QCTL" -d "$S" requeue --dead --error "Shipment Document" --dry-run; has "would requeue 0 tasks"
run 2 "$QCTL" -d "$S" requeue 2 --error x

# --- list --since on 3,000 tasks over 48 hours (mkstore --many): the store
# filters, so every page but the last is full (filtered after the page
# was cut, the first pages came out empty: done is in time order)
"$MKSTORE" "$T/m" --many 3000 >"$T/mk" || fail "mkstore --many: $(cat "$T/mk")"
grep -q "3000 tasks" "$T/mk" || fail "mkstore --many: $(cat "$T/mk")"
since=$(date -d '24 hours ago' '+%Y-%m-%d %H:%M')
since_ms=$(( $(date -d "$since" +%s) * 1000 ))
run 0 "$QCTL" -d "$T/m" list --state done --limit 100000 --json
day=$(jq --argjson s "$since_ms" '[.tasks[]|select(.updated_ms >= $s)]|length' "$T/out")
[ "$day" -gt 100 ] && [ "$day" -lt "$(jq '.tasks|length' "$T/out")" ] ||
	fail "mkstore --many: $day done tasks in the last day"
cursor=; listed=0; pages=0; : >"$T/seen"
while :; do
	run 0 "$QCTL" -d "$T/m" list --state done --since "$since" --limit 50 \
		${cursor:+--after "$cursor"} --json
	k=$(jq '.tasks|length' "$T/out")
	jq -r '.tasks[].id' "$T/out" >>"$T/seen"
	jq -e --argjson s "$since_ms" 'all(.tasks[]; .updated_ms >= $s)' \
		"$T/out" >/dev/null || fail "list --since: a task from before"
	cursor=$(jq -r '.next // empty' "$T/out")
	listed=$((listed + k)); pages=$((pages + 1))
	[ -n "$cursor" ] || break
	[ "$k" -eq 50 ] || fail "list --since: page $pages holds $k, not 50"
	[ "$pages" -lt 200 ] || { fail "list --since never ends"; break; }
done
is "$listed" "$day" "list --since: every task of the day"
is "$(sort "$T/seen" | uniq -d | wc -l)" 0 "list --since: no task twice"
run 0 "$QCTL" -d "$T/m" list --state done --since "$since" --limit 50
has "more: qctl list --state done --since '$since' --limit 50 --after"
run 0 "$QCTL" -d "$T/m" list --state dead --grep /var/3pl/incoming/ --limit 10 --json
is "$(jq '.tasks|length' "$T/out")" 10 "list --grep a source"
run 0 "$QCTL" -d "$T/m" stats --json
dead=$(jq .totals.dead "$T/out")
run 0 "$QCTL" -d "$T/m" errors --json
is "$(jq .scanned "$T/out")" "$dead" "errors: every dead task scanned"
is "$(jq '[.groups[].count]|add' "$T/out")" "$dead" "errors: the groups hold every dead task"
is "$(jq '[.groups[].count] == ([.groups[].count]|sort|reverse)' "$T/out")" true "errors: the largest group first"

# --- show
run 0 "$QCTL" -d "$S" show 2
has "state            dead"; has "last status      400"
has "does not allow a shipment"; has '"track": "1ZTRACK2"'; has "permanent"
run 0 "$QCTL" -d "$S" show 2 --json
is "$(jq -r '.history|length' "$T/out")" 1 "show history"
is "$(jq -r '.payload.track' "$T/out")" 1ZTRACK2 "show payload"
is "$(jq -r '.history[0].http_status' "$T/out")" 400 "show history status"
run 1 "$QCTL" -d "$S" show 999; errhas "not found"

# --- requeue
run 1 "$QCTL" -d "$S" requeue 5;              errhas "not dead"
run 1 "$QCTL" -d "$S" requeue 4 --force;      errhas "leased"
run 2 "$QCTL" -d "$S" requeue
run 2 "$QCTL" -d "$S" requeue 2 --dead
run 0 "$QCTL" -d "$S" requeue --dead --type price --dry-run; has "would requeue 1 task: 8"
is "$(ids dead)" "2,8" "dry run moved nothing"
run 0 "$QCTL" -d "$S" requeue --dead --grep "does not allow" --keep-attempts --json
is "$(jq -r '.requeued[0]' "$T/out")" 2 "requeue --grep"
run 0 "$QCTL" -d "$S" show 2 --json
is "$(jq -r .attempts "$T/out")" 1 "--keep-attempts"
run 0 "$QCTL" -d "$S" requeue 8;               has "requeued 1 task: 8"
run 0 "$QCTL" -d "$S" show 8 --json
is "$(jq -r .attempts "$T/out")" 0 "attempts reset"
is "$(ids dead)" "" "no dead left"
run 0 "$QCTL" -d "$S" requeue 1 --force;       has "requeued 1 task: 1"

# --- retry-now
run 0 "$QCTL" -d "$S" retry-now 3;             has "runs now"
is "$(ids scheduled)" "" "retry-now"
run 1 "$QCTL" -d "$S" retry-now 4;             errhas "leased"

# --- pause and resume
run 0 "$QCTL" -d "$S" pause tracking;          has "paused tracking"
run 0 "$QCTL" -d "$S" stats --json
is "$(jq -r '.types[]|select(.type=="tracking")|.paused' "$T/out")" true "paused"
run 0 "$QCTL" -d "$S" pause
run 0 "$QCTL" -d "$S" stats --json
is "$(jq -r .paused_all "$T/out")" true "pause all"
run 0 "$QCTL" -d "$S" resume;                  has "resumed every type"
run 0 "$QCTL" -d "$S" stats --json
is "$(jq -r '[.paused_all, (.types[]|select(.type=="tracking")|.paused)]|map(tostring)|join(",")' "$T/out")" "false,false" "resume all"
run 0 "$QCTL" -d "$S" pause --help;      has "usage: qctl pause"
run 0 "$QCTL" -d "$S" backup -h;          has "usage: qctl backup"
[ -e ./--help ] || [ -e ./-h ] && fail "--help taken for a backup path"
run 0 "$QCTL" -d "$S" stats --json
is "$(jq -r '[.types[].type]|map(select(startswith("-")))|length' "$T/out")" 0 "--help never taken for a type"
run 2 "$QCTL" -d "$S" pause "Bad Type"

# --- delete and purge
run 1 "$QCTL" -d "$S" delete 4;                errhas "leased"
run 0 "$QCTL" -d "$S" delete 4 --force;        has "deleted task 4"
run 1 "$QCTL" -d "$S" delete 4;                errhas "not found"
run 0 "$QCTL" -d "$S" delete 9;                has "deleted task 9"
is "$(ids ready | tr , '\n' | grep -c '^10$')" 1 "waiting task promoted after its head went"
run 2 "$QCTL" -d "$S" delete --dead
run 2 "$QCTL" -d "$S" purge --older-than 1d
run 0 "$QCTL" -d "$S" purge --superseded --older-than 0s --json
is "$(jq -r .deleted "$T/out")" 1 "purge superseded"
run 0 "$QCTL" -d "$S" purge --done --older-than 1d; has "deleted 0 done tasks"
# a task that dies now and is deleted by age
"$QCTL" -d "$S" delete --dead --older-than 0s >/dev/null
run 0 "$QCTL" -d "$S" delete --dead --older-than 0s; has "deleted 0 dead"

# --- delete --dead by selection (the dead tasks requeue would take), on a
# store of its own
"$MKSTORE" "$T/e" || fail "mkstore"
run 2 "$QCTL" -d "$T/e" delete --dead --dry-run;        errhas "all"
run 2 "$QCTL" -d "$T/e" delete --dead --force --all
run 2 "$QCTL" -d "$T/e" delete 2 --error x
run 2 "$QCTL" -d "$T/e" delete 2 --dead
run 0 "$QCTL" -d "$T/e" delete --dead --error 'The SKU "NOPE"'; has "deleted 0 dead tasks"
run 0 "$QCTL" -d "$T/e" delete --dead --error "$price_err" --dry-run --json
is "$(jq -r '[.would_delete, .dry_run]|map(tostring)|join(",")' "$T/out")" "1,true" "delete --dead --dry-run"
is "$(ids_in "$T/e" dead)" "2,8" "delete --dry-run deleted nothing"
run 0 "$QCTL" -d "$T/e" delete --dead --type tracking --error "$price_err"; has "deleted 0 dead tasks"
run 0 "$QCTL" -d "$T/e" delete --dead --error "$price_err";  has "deleted 1 dead task$"
is "$(ids_in "$T/e" dead)" "2" "delete --dead --error"
run 1 "$QCTL" -d "$T/e" show 8;                        errhas "not found"
run 0 "$QCTL" -d "$T/e" delete --dead --grep "does not allow" --older-than 1d; has "deleted 0 dead tasks"
run 0 "$QCTL" -d "$T/e" delete --dead --all --json
is "$(jq -r .deleted "$T/out")" 1 "delete --dead --all"
is "$(ids_in "$T/e" dead)" "" "no dead left"
run 0 "$QCTL" -d "$T/e" check

# --- check and backup
run 0 "$QCTL" -d "$S" check;                   has "every index agrees"
run 0 "$QCTL" -d "$S" check --json
is "$(jq -r .ok "$T/out")" true "check --json"
run 0 "$QCTL" -d "$S" backup "$T/bk";          has "written to"
run 1 "$QCTL" -d "$S" backup "$T/bk";          errhas "exists"
is "$(stat -c %a "$T/bk/data.mdb")" 640 "the backup is not readable by others"
run 0 "$QCTL" -d "$T/bk" check
"$QCTL" -d "$S" stats --json | jq -S .totals >"$T/a"
"$QCTL" -d "$T/bk" stats --json | jq -S .totals >"$T/b"
cmp -s "$T/a" "$T/b" || fail "backup differs: $(diff "$T/a" "$T/b")"
[ ! -e "$T/bk.tmp-"* ] 2>/dev/null || fail "temporary backup left behind"

# --- the job table, as an operator reads it (no store needed)
run 0 "$QCTL" -d "$T/nostore" types;           has "tracking_number/tracking/awb/track"
run 0 "$QCTL" -d "$T/nostore" types --json
is "$(jq -r '[.[].type]|join(",")' "$T/out")" "tracking,stock,price,rest" "types --json"
is "$(jq -r '.[]|select(.type=="rest")|.inputs|join(",")' "$T/out")" "ndjson,json" "rest takes no CSV"
is "$(jq -r '.[]|select(.type=="stock")|.fields[]|select(.field=="qty")|.csv|join(",")' "$T/out")" "qty,quantity" "stock qty columns"
[ ! -e "$T/nostore" ] || fail "qctl types made a store"

# --- damage: a corrupt record and another schema version get a clear
# message and exit 1, never a crash (mdb_load from lmdb-utils writes them)
if command -v mdb_load >/dev/null; then
	"$MKSTORE" "$T/bad" && "$MKSTORE" "$T/old" || fail "mkstore"
	printf '\\00\\00\\00\\00\\00\\00\\00\\05\ngarbage\n' |
		mdb_load -T -s tasks "$T/bad"
	run 1 "$QCTL" -d "$T/bad" show 5;    errhas "task 5: record of 7 bytes"
	run 1 "$QCTL" -d "$T/bad" check;     errhas "cannot be decoded"
	run 0 "$QCTL" -d "$T/bad" list --state ready --json
	is "$(jq -r '[.tasks[].id]|map(tostring)|join(",")' "$T/out")" "7,9" "list skips the corrupt record"
	printf 'schema\n\\00\\00\\00\\63\n' | mdb_load -T -s meta "$T/old"
	run 1 "$QCTL" -d "$T/old" stats;     errhas "schema version 99, this build reads version 1"
else
	echo "mdb_load missing (lmdb-utils): damage cases skipped"
fi

echo "qctl.sh: $n commands run, $fails failed"
[ "$fails" -eq 0 ]
