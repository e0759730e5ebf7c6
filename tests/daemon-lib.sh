# daemon-lib.sh - what the daemon's shell tests share; sourced, not run.
#
#   . "$top_srcdir/tests/daemon-lib.sh"
#   lib_setup NAME          binaries ($M2W $QCTL $FAKE), skips (exit 77)
#                           when the fake, jq or curl are missing, a temp
#                           dir $T with the store path $S, a cleanup trap
#                           (daemon and fake killed; the daemon's log shown
#                           on failure; M2W_TEST_KEEP=1 keeps $T), and
#                           fail / is / say
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
fails=0

lib_cleanup() {
	[ -n "$DPID" ] && kill -9 "$DPID" 2>/dev/null
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
	wait 2>/dev/null
	if [ "$fails" -ne 0 ] || [ -n "${M2W_TEST_KEEP:-}" ]; then
		echo "--- daemon log (tail) ---"; tail -n 40 "$T/m2w.log" 2>/dev/null
		[ -n "${M2W_TEST_KEEP:-}" ] && { echo "kept $T"; return; }
	fi
	rm -rf "$T"
}

lib_setup() {
	[ -x "$FAKE" ] || { echo "fake-magento not built: skipped"; exit 77; }
	command -v jq >/dev/null || { echo "jq missing: skipped"; exit 77; }
	command -v curl >/dev/null || { echo "curl missing: skipped"; exit 77; }
	T=$(mktemp -d "${TMPDIR:-/tmp}/m2w-$1.XXXXXX") || exit 99
	S="$T/store"
	trap lib_cleanup EXIT INT TERM
}

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
is() { [ "$1" = "$2" ] || fail "$3: got '$1', wanted '$2'"; }
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
