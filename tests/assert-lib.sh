# assert-lib.sh - the shell tests' assertions; sourced, not run.
#
#   . "$top_srcdir/tests/assert-lib.sh"
#
# Failures are counted in $fails (the test ends with [ "$fails" -eq 0 ]);
# run counts its commands in $n. run, has, lacks and errhas use $T/out and
# $T/err, so $T must be the test's temporary directory.
fails=0
n=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
is() { [ "$1" = "$2" ] || fail "$3: got '$1', wanted '$2'"; }
# run EXPECTED_EXIT CMD...: output in $T/out, stderr in $T/err
run() {
	want=$1; shift
	n=$((n + 1))
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	[ "$got" -eq "$want" ] ||
		fail "exit $got, wanted $want: $* ($(head -c 300 "$T/err"))"
}
has() { grep -q -- "$1" "$T/out" || fail "output lacks '$1': $(head -c 400 "$T/out")"; }
lacks() { ! grep -q -- "$1" "$T/out" || fail "output has '$1'"; }
errhas() { grep -q -- "$1" "$T/err" || fail "stderr lacks '$1': $(cat "$T/err")"; }
