# bench-lib.sh - what e2e.sh, ingest.sh and shoppers.sh share; sourced, not run.
#
#   . "$(dirname "$0")/bench-lib.sh"
#   need_built FILE...   exit 1 naming the first program not built
#   need_cmds CMD...     exit 1 naming the first command not on PATH
#   now_ms, cpu PID, calc EXPR [FMT], say, die, field NAME LINE: small
#                        helpers (see below)
#
# Sets $here (this folder), $top (the build tree: $top_builddir, else two
# folders up) and the programs $M2W $QCTL $FAKE $PUSH $PROBE under it.

here=$(cd "$(dirname "$0")" && pwd)
top=${top_builddir:-$here/../..}
M2W="$top/src/m2worker"
QCTL="$top/tools/qctl/qctl"
FAKE="$top/tools/fake-magento/fake-magento"
PUSH="$top/tools/bench/push"
PROBE="$top/tools/bench/probe"

need_built() {
	for b in "$@"; do
		[ -x "$b" ] || { echo "$b: not built (make, or set top_builddir)" >&2; exit 1; }
	done
}

need_cmds() {
	for c in "$@"; do
		command -v "$c" >/dev/null || { echo "$c: not found" >&2; exit 1; }
	done
}

HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
now_ms() { date +%s%3N; }
# cpu PID: user + system CPU seconds the process has used so far
cpu() { awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# calc EXPR [FORMAT]: awk arithmetic, printed with FORMAT (default %.1f)
calc() { awk "BEGIN { printf \"${2:-%.1f}\", $1 }"; }
say() { echo "$*" >&2; }
die() { say "$*"; exit 1; }
# field NAME LINE: the value of NAME=... in a `push` or `probe` output line
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
