#!/usr/bin/env bash
# tests/fuzz/run.sh [-t SECONDS] [-j JOBS] [-b BUILD_DIR] [-o OUT_DIR] [-m]
#                   [TARGET...]
#
# Design: runs each libFuzzer target (default: every BUILD_DIR/fuzz_*
# built by build.sh) for -t seconds (default 60) on a scratch copy of its
# committed seed corpus tests/fuzz/corpus/<target>/, so a run never
# changes the committed files. UBSan is fatal (halt_on_error, also built
# in with -fno-sanitize-recover), ASan and LeakSanitizer are on; a crash,
# a sanitizer report, a leak, a timeout (-timeout, default 25 s per input)
# or an out-of-memory all count as failures and leave their input under
# OUT_DIR/<target>/ (a temporary directory unless -o is given; it is kept
# when something failed or -o was given). tests/fuzz/<target>.dict is
# used when present. Up to -j targets run at once (default 1).
#
# One line per target:
#   fuzz_csv: ok execs=123456 exec/s=4100 cov=812 ft=2900 corpus=310
#     new=58 crashes=0
# and the exit status is 1 when any target failed.
#
# -m merges the run's new inputs back into the committed corpus,
# minimised (libFuzzer -merge=1 of the committed seeds plus the run's
# corpus into an empty directory, which then replaces the committed one),
# so the committed corpus holds only inputs that add coverage. The merge
# uses -use_counters=0: edges count, their hit counts do not, which keeps
# a corpus at a few hundred files at most.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=60
jobs=1
build=$top/build-fuzz
out=
merge=0
per_input_timeout=${FUZZ_TIMEOUT:-25}

usage() {
	sed -n '2,3p' "$0" | sed 's/^# //' >&2
	exit 2
}
while getopts "t:j:b:o:mh" opt; do
	case $opt in
	t) secs=$OPTARG ;;
	j) jobs=$OPTARG ;;
	b) build=$OPTARG ;;
	o) out=$OPTARG ;;
	m) merge=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in "$build"/fuzz_*; do
		[ -x "$f" ] && [ -f "$f" ] && targets+=("$(basename "$f")")
	done
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "run.sh: no targets in $build (run tests/fuzz/build.sh first)" >&2
	exit 1
fi

keep_out=1
if [ -z "$out" ]; then
	out=$(mktemp -d "${TMPDIR:-/tmp}/m2w-fuzz.XXXXXX")
	keep_out=0
fi
mkdir -p "$out"

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# run_one NAME: runs one target; writes OUT/NAME/summary and returns its
# status (0 = no finding).
run_one() {
	local name=$1 bin=$build/$1 dir=$out/$1 rc=0
	local seeds=$here/corpus/$1 dict=$here/$1.dict
	local log=$dir/fuzz.log args=()

	rm -rf "$dir"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	if [ ! -x "$bin" ]; then
		echo "$name: FAILED (no binary $bin)" >"$dir/summary"
		return 1
	fi
	[ -d "$seeds" ] && cp -p "$seeds"/. "$dir/corpus/" -R
	# inputs that once found a bug run first, every time (regressions)
	[ -d "$here/crashes/$1" ] && cp -p "$here/crashes/$1"/. "$dir/corpus/" -R
	[ -f "$dict" ] && args+=("-dict=$dict")
	"$bin" "${args[@]}" -max_total_time="$secs" -timeout="$per_input_timeout" \
		-print_final_stats=1 -close_fd_mask=1 \
		-artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$log" 2>&1 || rc=$?

	local stats execs eps cov ft corp new crashes status
	stats=$(grep -a -E '^#[0-9]+[[:space:]]+(DONE|INITED|pulse|NEW|REDUCE)' "$log" | tail -n 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
	cov=$(printf '%s\n' "$stats" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(printf '%s\n' "$stats" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(find "$dir/corpus" -type f | wc -l)
	crashes=$(find "$dir/artifacts" -type f | wc -l)
	status=ok
	if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ] ||
		grep -a -q -E '^SUMMARY: [A-Za-z]+Sanitizer|ERROR: libFuzzer' "$log"; then
		status=FAILED
		[ "$crashes" -gt 0 ] || crashes=1
	fi
	printf '%s: %s execs=%s exec/s=%s cov=%s ft=%s corpus=%s new=%s crashes=%s\n' \
		"$name" "$status" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" \
		"$corp" "${new:-?}" "$crashes" >"$dir/summary"
	if [ "$status" != ok ]; then
		{
			echo "---- $name: last lines of $log"
			grep -a -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -n 40
			echo "---- inputs kept in $dir/artifacts/"
		} >>"$dir/summary"
		return 1
	fi
	if [ "$merge" = 1 ]; then
		local m=$dir/merged
		mkdir -p "$m"
		if "$bin" "${args[@]}" -merge=1 -use_counters=0 "$m" "$seeds" "$dir/corpus" >"$dir/merge.log" 2>&1; then
			mkdir -p "$seeds"
			find "$seeds" -type f -delete
			cp -p "$m"/. "$seeds/" -R
			echo "$name: merged, $(find "$seeds" -type f | wc -l) files in $seeds" >>"$dir/summary"
		else
			echo "$name: merge FAILED (see $dir/merge.log)" >>"$dir/summary"
			return 1
		fi
	fi
	return 0
}

failed=0
pids=()
names=()
wait_one() {
	# wait for the oldest running target
	local pid=${pids[0]} name=${names[0]}
	wait "$pid" || failed=1
	cat "$out/$name/summary"
	pids=("${pids[@]:1}")
	names=("${names[@]:1}")
}
for t in "${targets[@]}"; do
	t=$(basename "$t")
	while [ ${#pids[@]} -ge "$jobs" ]; do wait_one; done
	run_one "$t" &
	pids+=($!)
	names+=("$t")
done
while [ ${#pids[@]} -gt 0 ]; do wait_one; done

if [ "$failed" = 0 ] && [ "$keep_out" = 0 ]; then
	rm -rf "$out"
else
	echo "run.sh: logs and inputs in $out"
fi
exit "$failed"
