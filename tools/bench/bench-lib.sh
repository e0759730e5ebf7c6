# bench-lib.sh - what e2e.sh and ingest.sh share; sourced, not run.
#
#   . "$(dirname "$0")/bench-lib.sh"
#   need_built FILE...   exit 1 naming the first program not built
#   need_cmds CMD...     exit 1 naming the first command not on PATH
#
# Sets $here (this folder), $top (the build tree: $top_builddir, else two
# folders up) and the programs $M2W $QCTL $FAKE $PUSH under it.

here=$(cd "$(dirname "$0")" && pwd)
top=${top_builddir:-$here/../..}
M2W="$top/src/m2worker"
QCTL="$top/tools/qctl/qctl"
FAKE="$top/tools/fake-magento/fake-magento"
PUSH="$top/tools/bench/push"

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
