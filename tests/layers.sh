#!/bin/sh
# layers.sh - the library's layers call downward only (src/README.md):
#
#   util < store < magento < jobs < ingest < daemon
#
# A file of src/LAYER/ may include the public headers (include/m2worker/)
# of its own layer and of the layers before it, and the private headers of
# its own folder; a public header may include those of its own layer and
# the ones before. Any other #include "..." fails the test, naming the
# file and the header. The graph (which folder includes which) is printed.
set -u

top_srcdir=${top_srcdir:-.}
cd "$top_srcdir" || exit 99
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

LAYERS="util store magento jobs ingest daemon"

# the layer of a public header
layer_of() {
	case $1 in
	error.h|log.h|buf.h|clock.h|parse.h) echo util ;;
	queue.h|admin.h|report.h) echo store ;;
	magento.h) echo magento ;;
	jobs.h) echo jobs ;;
	ingest.h) echo ingest ;;
	config.h) echo daemon ;;
	*) echo unknown ;;
	esac
}

# rank of a layer: 1..6
rank() {
	i=1
	for l in $LAYERS; do
		[ "$l" = "$1" ] && { echo $i; return; }
		i=$((i + 1))
	done
	echo 99
}

# check FILE LAYER FOLDER: every #include "..." of FILE
check() {
	file=$1 mine=$2 folder=$3
	grep -o '^#include "[^"]*"' "$file" | sed 's/^#include "//; s/"$//' |
	while read -r h; do
		case $h in
		config.h) ;;   # autoconf's, from the build directory
		m2worker/*)
			l=$(layer_of "${h#m2worker/}")
			if [ "$l" = unknown ]; then
				echo "FAIL: $file includes $h, a header of no layer"
			elif [ "$(rank "$l")" -gt "$(rank "$mine")" ]; then
				echo "FAIL: $file ($mine) includes $h ($l): upward"
			fi
			echo "EDGE $mine $l" ;;
		*)
			if [ -z "$folder" ] || [ ! -f "$folder/$h" ]; then
				echo "FAIL: $file includes $h, not a header of its folder"
			fi ;;
		esac
	done
}

out=$(
	for l in $LAYERS; do
		for f in src/"$l"/*.c src/"$l"/*.h; do
			[ -f "$f" ] && check "$f" "$l" "src/$l"
		done
	done
	for f in include/m2worker/*.h; do
		check "$f" "$(layer_of "$(basename "$f")")" ""
	done
)
echo "$out" | grep '^FAIL' && fails=$(echo "$out" | grep -c '^FAIL')

echo "layer graph (folder: the layers it includes):"
for l in $LAYERS; do
	echo "  $l: $(echo "$out" | awk -v l="$l" '$1 == "EDGE" && $2 == l &&
		$3 != l { print $3 }' | sort -u | tr '\n' ' ')"
done
[ "$fails" -eq 0 ] || exit 1
echo "every include goes downward"
