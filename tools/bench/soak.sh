#!/bin/sh
# soak.sh - does the daemon run for years? TASKS stock updates pushed over
# HTTP through the daemon against the fake Magento (no added latency) with
# retention measured in seconds, sampling the store and the process every
# STEP tasks.
#
# Usage: tools/bench/soak.sh [-n TASKS] [-e STEP] [-k KEEP] [-p PNG] [-d DIR]
#
#   -n TASKS   tasks in all (default 5000000)
#   -e STEP    tasks a round, and a sample after each (default 100000)
#   -k KEEP    [store] keep_done and keep_dead (default 20s; keep_superseded
#              is a third of it, purge_interval 1s)
#   -p PNG     also plot the samples with gnuplot into PNG
#   -d DIR     temporary directory under DIR (default ${TMPDIR:-/tmp}): the
#              store lives there
#
# A round pushes STEP stock updates (tools/bench/push -k: 4 clients, 500
# items a request, over 50,000 SKUs, so a SKU gets two a round and newest
# wins supersedes some of them) and waits until the daemon has worked them
# off; then one line: tasks so far, seconds, tasks in the store, purged so
# far, map used (the file's high-water mark) and free (pages on LMDB's free
# list), data.mdb's size, the daemon's anonymous RSS (RssAnon: heap and
# stacks, without the store's mapped pages) and its open fds. The table is
# tab-separated on stdout (a header line first); the run's summary goes to
# stderr: each column at 1,000,000 tasks and at the end, and the largest
# value after 1,000,000 against it (flat = within 10%).
#
# Numbers only: it never passes or fails on them, and exits non-zero only
# when it cannot run.
set -u
. "$(dirname "$0")/bench-lib.sh"

N=5000000 STEP=100000 KEEP=20 PNG= DIR=${TMPDIR:-/tmp}
while getopts n:e:k:p:d: o; do
	case $o in
	n) N=$OPTARG ;; e) STEP=$OPTARG ;; k) KEEP=${OPTARG%s} ;;
	p) PNG=$OPTARG ;; d) DIR=$OPTARG ;;
	*) sed -n '3,12p' "$0" >&2; exit 2 ;;
	esac
done
need_built "$M2W" "$QCTL" "$FAKE" "$PUSH"
need_cmds jq curl
[ -z "$PNG" ] || need_cmds gnuplot

T=$(mktemp -d "$DIR/m2w-soak.XXXXXX") || exit 1
S="$T/store"
FPID= DPID=
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null
	[ -n "$FPID" ] && kill "$FPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

"$FAKE" --port 0 --port-file "$T/fport" --token soak --products 50000 \
	>"$T/fake.log" 2>&1 & FPID=$!
i=0
while [ ! -s "$T/fport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$T/fport" ] || die "the fake did not start: $(cat "$T/fake.log")"
HP=$("$PUSH" freeport)
cat >"$T/m2w.conf" <<EOF
[store]
path = $S
map_max = 4GiB
keep_done = ${KEEP}s
keep_superseded = $((KEEP / 3 > 0 ? KEEP / 3 : 1))s
keep_dead = ${KEEP}s
purge_interval = 1s
[magento]
base_url = http://127.0.0.1:$(cat "$T/fport")
auth = token
token = soak
[workers]
threads = 8
[log]
level = warn
file = $T/m2w.log
[http]
enabled = yes
port = $HP
tokens = soak
EOF
"$M2W" -c "$T/m2w.conf" & DPID=$!
i=0
until curl -sf -o /dev/null "http://127.0.0.1:$HP/healthz"; do
	i=$((i + 1))
	[ $i -lt 100 ] && kill -0 "$DPID" 2>/dev/null || die "the daemon did not start: $(cat "$T/m2w.log")"
	sleep 0.1
done

pending() { "$QCTL" -d "$S" stats --json | jq '.totals | .ready + .scheduled + .leased + .waiting'; }
mib() { calc "$1 / 1048576" %.1f; }
status() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$DPID/status"; }

printf 'tasks\tseconds\tstored\tpurged\tmap_used_MiB\tmap_free_MiB\tfile_MiB\tanon_MiB\tfds\n' |
	tee "$T/table.tsv"
t0=$(now_ms) sent=0
while [ "$sent" -lt "$N" ]; do
	n=$STEP
	[ $((sent + n)) -gt "$N" ] && n=$((N - sent))
	# shellcheck disable=SC2046 # no -s for the first round
	"$PUSH" http -k -p "$HP" -t soak -c 4 -b 500 -n "$n" -o 50000 \
		$([ "$sent" -gt 0 ] && echo "-s $sent") >/dev/null ||
		die "push failed at $sent"
	sent=$((sent + n))
	while [ "$(pending)" != 0 ]; do sleep 0.2; done
	kill -0 "$DPID" 2>/dev/null || die "the daemon died: $(tail -5 "$T/m2w.log")"
	st=$("$QCTL" -d "$S" stats --json)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sent" \
		"$(calc "($(now_ms) - $t0) / 1000" %.0f)" \
		"$(echo "$st" | jq '[.totals[]] | add')" \
		"$(echo "$st" | jq '[.purged[]] | add')" \
		"$(mib "$(echo "$st" | jq .map_used)")" \
		"$(mib "$(echo "$st" | jq .map_free)")" \
		"$(mib "$(stat -c %s "$S/data.mdb")")" \
		"$(calc "$(status RssAnon) / 1024" %.1f)" \
		"$(ls "/proc/$DPID/fd" | wc -l)" | tee -a "$T/table.tsv"
done

awk -F '\t' -v step="$STEP" '
NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i; next }
$1 <= 1000000 { for (i = 3; i <= NF; i++) base[i] = $i; at = $1 }
$1 > 1000000 { for (i = 3; i <= NF; i++) if ($i > top[i]) top[i] = $i; last = $0 }
END {
	if (!at || last == "") { print "(fewer than 1,000,000 tasks: no flatness summary)"; exit }
	split(last, l, "\t")
	printf "%-14s %12s %12s %12s %8s\n", "column", "at " at, "at " l[1], "max after", "max/at"
	for (i = 3; i <= 9; i++)
		if (i != 4)
			printf "%-14s %12s %12s %12s %8.2f\n", name[i], base[i], l[i], top[i],
				(base[i] > 0 ? top[i] / base[i] : 0)
}' "$T/table.tsv" >&2
echo "the daemon's log (warnings and errors): $(grep -c . "$T/m2w.log") lines" >&2
sort -k3,3 "$T/m2w.log" | awk '{ print $2, $3 }' | uniq -c | head -5 >&2

if [ -n "$PNG" ]; then
	gnuplot <<EOF || die "gnuplot failed"
set terminal pngcairo size 900,520 font ",10"
set output "$PNG"
set title "m2worker soak: $(calc "$N / 1000000" %g) million stock updates, keep ${KEEP}s"
set xlabel "tasks through the daemon (millions)"
set ylabel "MiB"
set y2label "open fds"
set y2tics
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set key bottom right
set datafile separator "\t"
plot "$T/table.tsv" using (\$1/1e6):5 skip 1 with lines lw 2 title "map used (file high-water)", \
     "" using (\$1/1e6):7 skip 1 with lines lw 2 dt 2 title "data.mdb size", \
     "" using (\$1/1e6):6 skip 1 with lines title "map free (reusable)", \
     "" using (\$1/1e6):8 skip 1 with lines lw 2 title "anonymous RSS", \
     "" using (\$1/1e6):9 skip 1 axes x1y2 with lines title "open fds (right)"
EOF
	echo "plot: $PNG" >&2
fi
