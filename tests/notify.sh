#!/bin/sh
# notify.sh - sd_notify without systemd: tests/notify-listen binds a unix
# datagram socket, $NOTIFY_SOCKET points the daemon at it, and the states
# it sends are checked: READY=1 only once the daemon serves (HTTP /healthz
# answers right after it, when HTTP push is built), a STATUS= line, the
# watchdog pings at half of $WATCHDOG_USEC, RELOADING=1 ... READY=1 around
# SIGHUP, STOPPING=1 on SIGTERM (and no ping after it), and a failed start
# says STATUS=start failed without READY=1. Skipped (77) when m2worker is
# built without libsystemd (m2worker --version says sd-notify=no).
set -u

top_builddir=${top_builddir:-.}
M2W="$top_builddir/src/m2worker"
LISTEN="$top_builddir/tests/notify-listen"
DPID=
LPID=
fails=0

"$M2W" --version | grep -q 'sd-notify=yes' ||
	{ echo "m2worker built without libsystemd: skipped"; exit 77; }
[ -x "$LISTEN" ] || { echo "tests/notify-listen not built"; exit 99; }
HTTP=no
"$M2W" --version | grep -q 'http-push=yes' && command -v curl >/dev/null &&
	HTTP=yes

T=$(mktemp -d "${TMPDIR:-/tmp}/m2w-notify.XXXXXX") || exit 99
cleanup() {
	[ -n "$DPID" ] && kill -9 "$DPID" 2>/dev/null
	[ -n "$LPID" ] && kill "$LPID" 2>/dev/null
	wait 2>/dev/null
	if [ "$fails" -ne 0 ]; then
		echo "--- states ---"; cat "$T/states" 2>/dev/null
		echo "--- daemon log (tail) ---"; tail -n 30 "$T/m2w.log" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
say() { echo "== $*"; }
count() { grep -c "^$1\$" "$T/states" 2>/dev/null || true; }
# wait_for PATTERN N SECONDS: until PATTERN is on N lines of the states
wait_for() {
	i=0
	while [ "$(count "$1")" -lt "$2" ]; do
		i=$((i + 1))
		[ $i -gt $(($3 * 20)) ] && return 1
		sleep 0.05
	done
}

"$LISTEN" "$T/notify.sock" "$T/states" 120 & LPID=$!
i=0
while [ ! -S "$T/notify.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$T/notify.sock" ] || { echo "notify-listen did not start"; exit 99; }

# config STORE: the daemon's configuration (HTTP on $HP when built)
config() {
	cat >"$T/m2w.conf" <<CONF
[store]
path = $1
[magento]
# nothing listens here, and no task is queued: no call is made
base_url = http://127.0.0.1:9
auth = token
token = test-token
[workers]
threads = 2
shutdown_grace = 2s
[log]
level = info
file = $T/m2w.log
CONF
	if [ "$HTTP" = yes ]; then
		cat >>"$T/m2w.conf" <<CONF
[http]
enabled = yes
listen = 127.0.0.1
port = $HP
tokens = notify-test-token
CONF
	fi
}

# --- a start that fails: STATUS says why, READY=1 never comes
say "failed start"
: >"$T/file"
HP=1
config "$T/file/store"
NOTIFY_SOCKET="$T/notify.sock" "$M2W" -c "$T/m2w.conf" 2>/dev/null
rc=$?
[ "$rc" -eq 1 ] || fail "a start on a bad store path exited $rc, wanted 1"
wait_for 'STATUS=start failed: .*' 1 5 || fail "no STATUS=start failed"
[ "$(count 'READY=1')" -eq 0 ] || fail "READY=1 from a failed start"
: >"$T/states"

# --- a start that works, on a free port (tried at random)
say "start"
tries=0
while :; do
	tries=$((tries + 1))
	[ $tries -gt 20 ] && { echo "daemon did not start"; cat "$T/m2w.log"; exit 99; }
	HP=$(( ($(date +%s) * 7 + $$ * 13 + tries * 1009) % 30000 + 20000 ))
	config "$T/store"
	: >"$T/m2w.log"
	: >"$T/states"
	NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000 \
		"$M2W" -c "$T/m2w.conf" & DPID=$!
	i=0
	while [ "$(count 'READY=1')" -eq 0 ] && kill -0 "$DPID" 2>/dev/null &&
	      [ $i -lt 200 ]; do
		sleep 0.05; i=$((i + 1))
	done
	[ "$(count 'READY=1')" -gt 0 ] && break
	kill -9 "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID=
	grep -q "cannot listen" "$T/m2w.log" ||
		{ echo "no READY=1:"; cat "$T/states" "$T/m2w.log"; exit 99; }
done
# READY=1 is there: the daemon must serve at once
if [ "$HTTP" = yes ]; then
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/healthz")
	[ "$code" = 200 ] || fail "healthz right after READY=1: $code"
	want="STATUS=ready: 2 workers, HTTP on 127.0.0.1:$HP, 0 watched directories"
else
	want="STATUS=ready: 2 workers, HTTP push not built, 0 watched directories"
fi
[ "$(count "$want")" -eq 1 ] || fail "no '$want'"
first=$(grep -n -m1 -E '^(READY|WATCHDOG)=1$' "$T/states" | cut -d: -f2)
[ "$first" = "READY=1" ] || fail "the first of READY/WATCHDOG was $first"

# --- the watchdog: every 200 ms (half of 400 ms), from the main loop
say "watchdog"
n0=$(count 'WATCHDOG=1')
sleep 2
n1=$(count 'WATCHDOG=1')
# 10 expected; each waits for a store commit (an fsync), so a slow disk
# under load may make fewer, but never more than one per 200 ms
[ $((n1 - n0)) -ge 3 ] && [ $((n1 - n0)) -le 12 ] ||
	fail "watchdog pings in 2 s: $((n1 - n0)), wanted 3..12"
grep -q 'watchdog interval_ms=400 ping_ms=200' "$T/m2w.log" ||
	fail "no watchdog line in the log"

# --- SIGHUP: RELOADING=1 then READY=1 again
say "reload"
kill -HUP "$DPID"
wait_for 'READY=1' 2 5 || fail "no READY=1 after SIGHUP"
[ "$(count 'RELOADING=1')" -eq 1 ] || fail "RELOADING=1 not sent once"
last=$(grep -E '^(READY|RELOADING)=1$' "$T/states" | tail -n 2 | tr '\n' ' ')
[ "$last" = "RELOADING=1 READY=1 " ] || fail "reload order: $last"
# one truth: SIGHUP reopens the log and forgets a refused admin password
grep -q 'info reload log reopened, admin login state cleared' "$T/m2w.log" ||
	fail "no reload line saying both: $(grep reload "$T/m2w.log")"

# --- SIGTERM: STOPPING=1, a clean exit, no ping after it
say "stop"
kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
[ "$rc" -eq 0 ] || fail "exit status after SIGTERM: $rc"
[ "$(count 'STOPPING=1')" -eq 1 ] || fail "STOPPING=1 not sent once"
grep -q '^STATUS=draining: SIGTERM' "$T/states" || fail "no STATUS=draining"
sed -n '/^STOPPING=1$/,$p' "$T/states" | grep -q '^WATCHDOG=1$' &&
	fail "a watchdog ping after STOPPING=1"

[ "$fails" -eq 0 ] && echo "notify: all checks passed"
[ "$fails" -eq 0 ]
