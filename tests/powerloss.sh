#!/bin/sh
# powerloss.sh - simulated power loss (ALICE-style): the daemon, qctl and
# the harness's own file drops run under tools/crashsim/libcrashsim.so,
# which records every write, sync and directory change under $T/root (the
# store, the watched directory, processed/, failed/, the backups). The
# harness notes each acknowledgement it sees with crashsim-mark: an HTTP
# 202, `qctl enqueue` exiting 0, a file in processed/ (and its errors
# file), tasks shown done, a backup. Then crashsim-replay builds, for many
# cut points, what a power cut after that op could leave on disk
# (tools/crashsim/replay.c has the model; modes dropped, subset, reorder),
# and each image must: open (`qctl check`); hold every task acknowledged
# before the cut (by key), done when it was seen done; keep every
# acknowledged file in incoming/ or processed/; have every row of a file in
# processed/ in the store; list every rejected row acknowledged; hold a
# backup that checks. Every POWERLOSS_START_EVERY-th image (default 5) the
# daemon starts on it against the fake, answers /healthz and stops cleanly
# on SIGTERM.
#
# POWERLOSS_CUTS=N (default 60) cut points; POWERLOSS_SEED=N repeats a
# run. A failure prints the cut, the mode and the seed, and keeps $T.
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
CS="$top_builddir/tools/crashsim"
SHIM="$CS/libcrashsim.so"
for f in "$SHIM" "$CS/crashsim-replay" "$CS/crashsim-mark"; do
	[ -e "$f" ] || { echo "$f not built (make check builds it): skipped"; exit 77; }
done
SHIM=$(cd "$(dirname "$SHIM")" && pwd)/libcrashsim.so
lib_setup powerloss
CUTS=${POWERLOSS_CUTS:-60}
EVERY=${POWERLOSS_START_EVERY:-5}
SEED=${POWERLOSS_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
echo "POWERLOSS_SEED=$SEED POWERLOSS_CUTS=$CUTS"

# Under ASan the shim comes before libasan in the link order; ASan allows
# that only when told (its interceptors then run after the shim's).
if ldd "$M2W" 2>/dev/null | grep -q libasan; then
	ASAN_OPTIONS="verify_asan_link_order=0:${ASAN_OPTIONS:-}"
	export ASAN_OPTIONS
fi

R="$T/root"
S="$R/store"   # lib_q, lib_pending
mkdir -p "$R/in" "$R/processed" "$R/failed" "$R/bak" "$T/trace" "$T/keys"
head -c 4096 /dev/zero >"$T/seq"
CRASHSIM_DIRS="$R" CRASHSIM_TRACE="$T/trace" CRASHSIM_SEQ="$T/seq"
export CRASHSIM_DIRS CRASHSIM_TRACE CRASHSIM_SEQ
shim() { LD_PRELOAD="$SHIM" "$@"; }
mark() { "$CS/crashsim-mark" "$@" || fail "crashsim-mark $*"; }
replay() { "$CS/crashsim-replay" "$@"; }

lib_fake --orders 400 --products 10
TOKEN=pl-token
# conf ROOT PORT: the configuration for a tree at ROOT
conf() {
	cat <<EOF
[store]
path = $1/store
[magento]
base_url = $F
auth = token
token = test-token
timeout = 3s
[workers]
threads = 2
shutdown_grace = 2s
[log]
level = info
file = $T/m2w.log
[tracking]
backoff_base = 100ms
backoff_cap = 400ms
[http]
enabled = yes
listen = 127.0.0.1
port = $2
tokens = $TOKEN
[watch "3pl"]
path = $1/in
processed = $1/processed
failed = $1/failed
type = tracking
settle = 200ms
poll_interval = 200ms
EOF
}
# start_daemon ROOT [shim]: on a free port, until /healthz answers
start_daemon() {
	_try=0
	while [ $_try -lt 5 ]; do
		HP=$(lib_pick_port)
		conf "$1" "$HP" >"$T/m2w.conf"
		if [ "${2:-}" = shim ]; then
			M2W_REAL=$M2W
			M2W="$T/m2w-shim"
			printf '#!/bin/sh\nLD_PRELOAD="%s" exec "%s" "$@"\n' \
				"$SHIM" "$M2W_REAL" >"$M2W"
			chmod +x "$M2W"
			lib_start_http "$T/m2w.conf"; _rc=$?
			M2W=$M2W_REAL
		else
			lib_start_http "$T/m2w.conf"; _rc=$?
		fi
		[ $_rc -eq 0 ] && return 0
		[ $_rc -eq 1 ] && grep -q 'cannot listen' "$T/m2w.log" && {
			_try=$((_try + 1)); continue; }
		return 1
	done
	return 1
}
stop_daemon() {
	kill -TERM "$DPID"; wait "$DPID"; _rc=$?; DPID=
	[ "$_rc" -eq 0 ] || { fail "daemon exited with status $_rc"; return 1; }
}
q() { shim "$QCTL" -d "$R/store" "$@"; }
wait_for() {  # PATH: 15 s at most
	_i=0
	while [ ! -e "$1" ]; do
		_i=$((_i + 1))
		[ $_i -gt 300 ] && { fail "no $1 after 15 s"; return 1; }
		sleep 0.05
	done
}
# rows NAME ORDER0 N [bad]: a tracking CSV of N rows, keys in $T/keys/NAME
rows() {
	printf 'order,track,carrier\n'
	: >"$T/keys/$1"
	_k=0
	while [ $_k -lt "$3" ]; do
		printf '%s,PL-%s-%s,ups\n' $(($2 + _k)) "$1" $_k
		echo "tracking:$(($2 + _k)):PL-$1-$_k" >>"$T/keys/$1"
		_k=$((_k + 1))
	done
	[ -n "${4:-}" ] && printf '1000000399,,ups\n'   # no track: rejected
}
marked_done=" "

# --- the recorded run ----------------------------------------------------
say "recorded run (seed $SEED)"
replay snap "$R" "$T/snap" || { fail "snapshot"; exit 1; }
start_daemon "$R" shim || { fail "the daemon did not start"; exit 1; }
round=0
while [ $round -lt 3 ]; do
	round=$((round + 1))
	# HTTP push: 202 after the fsync'd commit
	name="h$round"
	rows "$name" $((1000000000 + round * 10)) 3 >"$T/$name.csv"
	code=$(curl -s -o "$T/out" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: text/csv' --data-binary @"$T/$name.csv" \
		"$H/v1/tasks?type=tracking")
	is "$code" 202 "push $name"
	[ "$code" = 202 ] && while read -r k; do mark task "$k"; done <"$T/keys/$name"
	# a CSV file written durably (.tmp, fsync, rename, fsync of the dir)
	name="2026010${round}_000000.csv"
	rows "$name" $((1000000100 + round * 10)) 3 $([ $round = 2 ] && echo bad) >"$T/$name"
	shim dd if="$T/$name" of="$R/in/.$name.tmp" conv=fsync status=none &&
		shim mv "$R/in/.$name.tmp" "$R/in/$name" && shim sync "$R/in" ||
		fail "dropping $name"
	mark put "$name"
	if wait_for "$R/processed/$name"; then
		mark file "$name"
		while read -r k; do mark task "$k"; done <"$T/keys/$name"
	fi
	if [ $round = 2 ] && wait_for "$R/failed/$name.errors.csv"; then
		mark errors "$name" 1
	fi
	# qctl enqueue: exit 0 after the commit
	name="q$round"
	rows "$name" $((1000000200 + round * 10)) 3 >"$T/$name.csv"
	if q enqueue --type tracking "$T/$name.csv" >"$T/out" 2>&1; then
		while read -r k; do mark task "$k"; done <"$T/keys/$name"
	else
		fail "qctl enqueue: $(cat "$T/out")"
	fi
	# what the workers settled, as qctl shows it
	sleep 0.3
	for k in $(q list --state done --limit 1000 --json | jq -r '.tasks[].idempotency_key'); do
		case "$marked_done" in *" $k "*) continue ;; esac
		mark done "$k"
		marked_done="$marked_done$k "
	done
	if [ $round = 2 ]; then
		q backup "$R/bak/b1" >"$T/out" 2>&1 && mark backup b1 ||
			fail "qctl backup: $(cat "$T/out")"
	fi
done
lib_wait_drained 20
for k in $(q list --state done --limit 1000 --json | jq -r '.tasks[].idempotency_key'); do
	case "$marked_done" in *" $k "*) continue ;; esac
	mark done "$k"
	marked_done="$marked_done$k "
done
stop_daemon
echo "acknowledged: $(echo $marked_done | wc -w) tasks seen done"

# --- the cuts ------------------------------------------------------------
replay list "$T/snap" "$T/trace" "$CUTS" "$SEED" >"$T/cuts" || { fail "replay list"; exit 1; }
STATES="ready scheduled leased waiting done dead superseded"
# check_image IMG: the checks above; failures name the cut (in $cut)
check_image() {
	I=$1 bad=0
	ifail() { fail "cut $cut: $*"; bad=1; }
	: >"$T/dump"
	if [ -e "$I/store/data.mdb" ]; then
		"$QCTL" -d "$I/store" check >"$T/out" 2>&1 || ifail "qctl check: $(cat "$T/out")"
		for s in $STATES; do
			"$QCTL" -d "$I/store" list --state "$s" --limit 100000 --json 2>/dev/null |
				jq -r --arg s "$s" '.tasks[] | "\($s) \(.idempotency_key)"'
		done >"$T/dump"
	fi
	while read -r what a b; do
		case $what in
		task) grep -q " $a\$" "$T/dump" || ifail "acknowledged task $a missing" ;;
		done) grep -q "^done $a\$" "$T/dump" ||
			ifail "task $a seen done is '$(grep " $a\$" "$T/dump" | cut -d' ' -f1)'" ;;
		put|file) [ -e "$I/processed/$a" ] || [ -e "$I/in/$a" ] ||
			ifail "file $a neither in incoming/ nor processed/" ;;
		errors) n=$(cat "$I/failed/$a.errors.csv" "$I"/failed/.*.errors.part 2>/dev/null |
				grep -c '^[0-9]')
			[ "$n" -ge "$b" ] ||
				ifail "errors file of $a lists $n of $b rejected rows" ;;
		backup) "$QCTL" -d "$I/bak/$a" check >"$T/out" 2>&1 ||
			ifail "backup $a: $(head -c 300 "$T/out")" ;;
		esac
	done <"$T/marks"
	for p in "$I"/processed/*; do
		[ -e "$p" ] || continue
		while read -r k; do
			grep -q " $k\$" "$T/dump" || ifail "$(basename "$p") in processed/ but its row $k is not in the store"
		done <"$T/keys/$(basename "$p")"
	done
	return $bad
}

say "$(wc -l <"$T/cuts") cuts"
i=0 nfail=0 started=0 tried=""
while read -r cut mode seed; do
	i=$((i + 1))
	[ $((i % 100)) = 0 ] && echo "... $i images, $nfail failed"
	I="$T/img"
	rm -rf "$I"
	replay image "$T/snap" "$T/trace" "$cut" "$mode" "$seed" "$I" >"$T/marks" ||
		{ fail "replay image $cut $mode $seed"; continue; }
	tried="$tried $cut"
	ok=1
	check_image "$I" || ok=0
	if [ $ok = 1 ] && [ $((i % EVERY)) = 0 ] && [ -e "$I/store/data.mdb" ]; then
		started=$((started + 1))
		if start_daemon "$I"; then
			stop_daemon || { fail "cut $cut: the daemon's stop"; ok=0; }
			"$QCTL" -d "$I/store" check >"$T/out" 2>&1 ||
				{ fail "cut $cut: qctl check after the daemon: $(cat "$T/out")"; ok=0; }
		else
			fail "cut $cut: the daemon did not start on the image: $(tail -n 3 "$T/m2w.log")"
			ok=0
		fi
	fi
	if [ $ok = 0 ]; then
		nfail=$((nfail + 1))
		echo "FAILED cut=$cut mode=$mode seed=$seed (POWERLOSS_SEED=$SEED), image kept in $T/fail-$cut-$mode"
		rm -rf "$T/fail-$cut-$mode"
		mv "$I" "$T/fail-$cut-$mode"
		cp "$T/marks" "$T/fail-$cut-$mode.marks"
		M2W_TEST_KEEP=1
	fi
done <"$T/cuts"
echo "tried cuts:$tried"
echo "powerloss: $i images checked, $started daemon starts, $nfail failed (seed $SEED)"

[ "$fails" -eq 0 ] && echo "all passed"
[ "$fails" -eq 0 ]
