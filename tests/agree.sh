#!/bin/sh
# agree.sh - `m2worker --check-config` and a real start agree on every
# config: the sample (contrib/m2worker.conf) and each file of
# tests/configs/ (good-*.conf must pass both, bad-*.conf must be refused by
# both, with the same reason). A config the check passes but the start
# refuses is the bug this test exists for (a [watch] with type = rest once
# passed the check and was refused by the watcher).
#
# In the files, @DIR@ becomes a fresh temporary directory (store, watched
# directories, log) and @PORT@ a free port on 127.0.0.1. Nothing is
# contacted: base_url points at a closed port, and the daemon is stopped
# with SIGTERM once its log says "ready".
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
M2W="$top_builddir/src/m2worker"
. "$top_srcdir/tests/assert-lib.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/m2w-agree.XXXXXX") || exit 99
DPID=
cleanup() {
	[ -n "$DPID" ] && kill -9 "$DPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

HTTP=yes
"$M2W" --version | grep -q 'http-push=yes' || HTTP=no
AMQP=yes
"$M2W" --version | grep -q 'amqp=yes' || AMQP=no
pick_port() {
	echo $(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 + 20000 ))
}

# start CONF DIR: the daemon's verdict, "ready" or "refused: REASON".
start() {
	"$M2W" -c "$1" >"$2/start.out" 2>&1 &
	DPID=$!
	i=0
	while [ $i -lt 100 ]; do
		if grep -q ' ready ' "$2/m2w.log" 2>/dev/null; then
			kill -TERM "$DPID"
			wait "$DPID"
			DPID=
			echo ready
			return
		fi
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$DPID" 2>/dev/null; then
		kill -9 "$DPID"
		wait "$DPID" 2>/dev/null
		DPID=
		echo "hung"
		return
	fi
	wait "$DPID"
	DPID=
	echo "refused: $(cat "$2/start.out" "$2/m2w.log" 2>/dev/null |
		grep -v ' start version=\| exit status' | tail -n 1)"
}

# one NAME FILE: check and start the config FILE, expecting NAME's verdict
one() {
	name=$1
	d="$T/$name"
	mkdir -p "$d"
	sed -e "s|@DIR@|$d|g" -e "s|@PORT@|$(pick_port)|g" "$2" >"$d/m2w.conf"
	"$M2W" -c "$d/m2w.conf" --check-config >"$d/check.out" 2>&1
	crc=$?
	verdict=$(start "$d/m2w.conf" "$d")
	want=good
	case $name in
	bad-*) want=bad ;;
	*http*) [ "$HTTP" = no ] && want=bad ;;
	*amqp*) [ "$AMQP" = no ] && want=bad ;;
	esac
	if [ $crc -eq 0 ] && [ "$verdict" != ready ]; then
		fail "$name: --check-config passes, the start says: $verdict"
	elif [ $crc -ne 0 ] && [ "$verdict" = ready ]; then
		fail "$name: --check-config refuses ($(tail -n 1 "$d/check.out")), the start works"
	elif [ $want = good ] && [ $crc -ne 0 ]; then
		fail "$name: refused: $(cat "$d/check.out")"
	elif [ $want = bad ] && [ $crc -eq 0 ]; then
		fail "$name: accepted by both"
	else
		echo "ok: $name: $(head -n 1 "$d/check.out" | sed "s|$d/||")"
	fi
}

sed -e 's|^path = /var/lib/m2worker$|path = @DIR@/store|' \
	-e 's|^file =$|file = @DIR@/m2w.log|' \
	"$top_srcdir/contrib/m2worker.conf" >"$T/sample.conf"
one good-sample "$T/sample.conf"
for f in "$top_srcdir"/tests/configs/*.conf; do
	one "$(basename "$f" .conf)" "$f"
done

[ "$fails" -eq 0 ] || exit 1
echo "all configs agree"
