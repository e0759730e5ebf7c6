# daemon-lib.sh - what the daemon's shell tests share; sourced, not run.
#
#   . "$top_srcdir/tests/daemon-lib.sh"
#   lib_setup NAME          binaries ($M2W $QCTL $FAKE), skips (exit 77)
#                           when the fake, jq or curl are missing or NAME
#                           is one of $M2W_SKIP_TESTS (space-separated:
#                           CI's sanitizer build skips the slowest), a temp
#                           dir $T with the store path $S, a cleanup trap
#                           (daemon and fake killed; the daemon's log shown
#                           on failure; M2W_TEST_KEEP=1 keeps $T), say, and
#                           tests/assert-lib.sh's fail / is / run / has
#   lib_fake ARGS...        starts the fake Magento (token test-token) with
#                           ARGS; sets $F (its URL) and state()
# The test counts failures in $fails, keeps the daemon's pid in $DPID and
# writes the daemon's log to $T/m2w.log.

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
M2W="$top_builddir/src/m2worker"
QCTL="$top_builddir/tools/qctl/qctl"
FAKE="$top_builddir/tools/fake-magento/fake-magento"
FAKE_PID=
DPID=
. "$top_srcdir/tests/assert-lib.sh"   # fail, is (and run, has, ...)

lib_cleanup() {
	for _p in $DPID ${DPIDS:-}; do kill -9 "$_p" 2>/dev/null; done
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
	wait 2>/dev/null
	if [ "$fails" -ne 0 ] || [ -n "${M2W_TEST_KEEP:-}" ]; then
		echo "--- daemon log (tail) ---"; tail -n 40 "$T/m2w.log" 2>/dev/null
		[ -n "${M2W_TEST_KEEP:-}" ] && { echo "kept $T"; return; }
	fi
	rm -rf "$T"
}

lib_setup() {
	case " ${M2W_SKIP_TESTS:-} " in
	*" $1 "*) echo "$1 is in M2W_SKIP_TESTS: skipped"; exit 77 ;;
	esac
	[ -x "$FAKE" ] || { echo "fake-magento not built: skipped"; exit 77; }
	command -v jq >/dev/null || { echo "jq missing: skipped"; exit 77; }
	command -v curl >/dev/null || { echo "curl missing: skipped"; exit 77; }
	T=$(mktemp -d "${TMPDIR:-/tmp}/m2w-$1.XXXXXX") || exit 99
	S="$T/store"
	trap lib_cleanup EXIT INT TERM
}

say() { echo "== $*"; }

lib_fake() {
	"$FAKE" --port 0 --port-file "$T/port" --token test-token "$@" \
		>"$T/fake.log" 2>&1 &
	FAKE_PID=$!
	i=0
	while [ ! -s "$T/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$T/port" ] || { echo "fake did not start"; cat "$T/fake.log"; exit 99; }
	F="http://127.0.0.1:$(cat "$T/port")"
}

state() { curl -s "$F/_fake/state"; }

# --- helpers of chaos.sh and diskfull.sh ---------------------------------
#   lib_q ARGS...           qctl on the store $S
#   lib_pending             tasks not finished (ready, scheduled, leased, waiting)
#   lib_wait_drained SECS   until lib_pending is 0; fail and 1 after SECS
#   lib_start_http CONF     starts the daemon with CONF (whose [http] port is
#                           $HP) and waits (30 s at most) for /healthz; sets
#                           DPID and H (its URL). Returns 0 when it answers,
#                           1 when the daemon exited (the caller may pick
#                           another port when its log says "cannot listen"),
#                           2 when it never answered (the daemon is killed)
#   lib_pick_port           a port in 20000..49999 drawn at random
#   lib_start ARGS...       the daemon on a fresh port: $HP drawn, the
#                           test's config ARGS... writes $T/m2w.conf, then
#                           lib_start_http; up to 10 ports while the log
#                           says "cannot listen"; exit 99 if it never starts
lib_q() { "$QCTL" -d "$S" "$@"; }
lib_pending() { lib_q stats --json | jq -r '.totals | .ready + .scheduled + .leased + .waiting'; }
lib_wait_drained() {
	_i=0
	while [ "$(lib_pending)" != 0 ]; do
		_i=$((_i + 1))
		[ $_i -gt $(($1 * 5)) ] && { fail "not drained after $1 s: $(lib_q stats --json | jq -c .totals)"; return 1; }
		sleep 0.2
	done
}
lib_pick_port() {
	echo $(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 + 20000 ))
}
lib_start() {
	_tries=0
	while [ $_tries -lt 10 ]; do
		_tries=$((_tries + 1))
		HP=$(lib_pick_port)
		config "$@"
		lib_start_http "$T/m2w.conf" && return 0
		grep -q "cannot listen" "$T/m2w.log" || break
	done
	echo "the daemon did not start"; cat "$T/m2w.log"; exit 99
}
lib_start_http() {
	"$M2W" -c "$1" & DPID=$!
	H="http://127.0.0.1:$HP"
	_i=0
	while [ $_i -lt 300 ]; do
		if ! kill -0 "$DPID" 2>/dev/null; then
			wait "$DPID"; DPID=; return 1
		fi
		[ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$H/healthz")" = 200 ] && return 0
		sleep 0.1; _i=$((_i + 1))
	done
	kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	return 2
}
