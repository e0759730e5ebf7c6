#!/usr/bin/env bash
# tests/fuzz/build.sh [BUILD_DIR] -- builds every libFuzzer target.
#
# Design: the library is built with clang and
# -fsanitize=fuzzer-no-link,address,undefined in a private copy of the
# source tree (BUILD_DIR/tree), so it works whatever state the checkout is
# in: configured in-tree (an out-of-tree configure would refuse it),
# distcleaned, or never configured (autoreconf then runs in the copy). The
# copy holds the files git knows (tracked, and untracked ones that are not
# ignored) plus the generated autotools files when the checkout has them,
# with their times kept so that make does not re-run automake. Then every
# tests/fuzz/fuzz_*.c (a glob: a new target needs no edit here) is compiled
# and linked with -fsanitize=fuzzer,address,undefined against that
# libm2worker.a and the libraries configure found, into BUILD_DIR/fuzz_*.
#
# BUILD_DIR defaults to build-fuzz in the top source directory. CC (default
# clang-14 if present, else clang) and EXTRA_CFLAGS may be set. Re-running
# re-syncs the copy and rebuilds what changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build-fuzz}
mkdir -p "$build"
build=$(cd "$build" && pwd)
tree=$build/tree

if [ -z "${CC:-}" ]; then
	if command -v clang-14 >/dev/null 2>&1; then CC=clang-14; else CC=clang; fi
fi
command -v "$CC" >/dev/null 2>&1 || { echo "build.sh: no $CC (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

san_lib="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
san_bin="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer ${EXTRA_CFLAGS:-}"

# --- 1. the copy of the source tree
echo "build.sh: copying the sources to $tree"
mkdir -p "$tree"
list=$build/files.txt
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$top" ls-files --cached --others --exclude-standard >"$list"
else
	# not a git checkout (e.g. an unpacked dist tarball): everything but
	# build products
	(cd "$top" && find . -path ./build-fuzz -prune -o -type f \
		! -name '*.o' ! -name '*.a' -print | sed 's|^\./||') >"$list"
fi
for f in configure Makefile.in config.h.in aclocal.m4; do
	[ -f "$top/$f" ] && echo "$f"
done >>"$list"
for d in build-aux m4; do
	[ -d "$top/$d" ] && (cd "$top" && find "$d" -type f)
done >>"$list"
# files that were deleted from the working tree but not from the index
(cd "$top" && while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done <"$list") \
	| sort -u >"$list.ok"
(cd "$top" && tar -cf - -T "$list.ok") | (cd "$tree" && tar -xpf -)

# --- 2. configure and build the library with the sanitizers
cd "$tree"
if [ ! -x configure ]; then
	echo "build.sh: autoreconf -fi"
	autoreconf -fi >"$build/autoreconf.log" 2>&1 || { cat "$build/autoreconf.log" >&2; exit 1; }
fi
if [ ! -f Makefile ] || [ configure -nt config.status ]; then
	echo "build.sh: configure CC=$CC"
	./configure CC="$CC" CFLAGS="$cflags $san_lib" >"$build/configure.log" 2>&1 ||
		{ tail -n 40 "$build/configure.log" >&2; exit 1; }
fi
echo "build.sh: make libm2worker.a"
make -j"${JOBS:-2}" libm2worker.a >"$build/make.log" 2>&1 || { tail -n 60 "$build/make.log" >&2; exit 1; }

# The flags configure chose (warnings, -std, include paths, libraries).
vars=$(make -s -f Makefile -f - m2w-fuzz-vars <<'MK'
m2w-fuzz-vars:
	@echo 'AM_CFLAGS=$(AM_CFLAGS)'
	@echo 'LIBS=$(M2W_ALL_LIBS) $(LIBS)'
MK
)
am_cflags=$(printf '%s\n' "$vars" | sed -n 's/^AM_CFLAGS=//p')
libs=$(printf '%s\n' "$vars" | sed -n 's/^LIBS=//p')

# --- 3. the targets
cd "$build"
n=0
for src in "$here"/fuzz_*.c; do
	[ -e "$src" ] || continue
	name=$(basename "$src" .c)
	echo "build.sh: $name"
	# shellcheck disable=SC2086
	"$CC" $cflags $san_bin $am_cflags -I"$tree" -I"$tree/include" -I"$tree/src" \
		-o "$build/$name" "$src" "$tree/libm2worker.a" ${libs//libm2worker.a/} -lm
	n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "build.sh: no tests/fuzz/fuzz_*.c" >&2; exit 1; }
echo "build.sh: $n targets in $build"
