#!/bin/sh
# Builds the libFuzzer targets in this directory against a build of the core
# library and runs each for N seconds, one after the other, on one core.
#
#   test/fuzz/run.sh [-b BUILD_DIR] [-t SECONDS] [-i] [-k] [-n] [TARGET...]
#
#   -b DIR   build directory (default /tmp/litestream-fuzz). When it holds no
#            Makefile yet, it is configured there with clang, the sanitizers
#            and -fsanitize=fuzzer-no-link (coverage for the library too).
#            Nothing is ever written to the source tree.
#   -t N     seconds per target (default 60)
#   -i       also check the invariants the headers promise (-DFUZZ_INVARIANTS):
#            a failed one aborts like a crash
#   -k       keep going after a finding (libFuzzer -fork=1 -ignore_crashes=1:
#            still one worker process) instead of stopping at the first
#   -n       build only, run nothing
#   TARGET   fuzz_s3_xml, fuzz_wal, ... (default: every fuzz_*.c here)
#
# Corpora grow in BUILD_DIR/fuzz/corpus/TARGET (seeded from seeds/TARGET);
# crashes land in BUILD_DIR/fuzz/artifacts/TARGET. Exit status: 1 if any
# target found something, else 0.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=/tmp/litestream-fuzz
secs=60
inv=
keep=
run=yes
while getopts b:t:ikn opt; do
	case $opt in
	b) build=$OPTARG ;;
	t) secs=$OPTARG ;;
	i) inv=-DFUZZ_INVARIANTS ;;
	k) keep="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1" ;;
	n) run=no ;;
	*) sed -n '2,23p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
	set -- $(cd "$here" && ls fuzz_*.c | sed 's/\.c$//')
fi

CC=${CC:-clang}
mkdir -p "$build"
build=$(cd "$build" && pwd)
case $build in "$top" | "$top"/*) echo "run.sh: build outside the source tree" >&2; exit 2 ;; esac

if [ ! -f "$build/Makefile" ]; then
	echo "run.sh: configuring $build"
	(cd "$build" && CC=$CC CFLAGS="-g -O1 -fsanitize=fuzzer-no-link -fno-omit-frame-pointer" \
		"$top/configure" -q --enable-sanitizers)
fi
make -s -C "$build" src/liblitestream.a

libs="$(pkg-config --libs libuv sqlite3 libcurl libcrypto libcjson inih liblz4 expat) -lhttp_parser -lpthread -lm"
cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="$cflags -Wall -Wextra -Wno-unused-parameter $inv"
cflags="$cflags -include $build/autoconfig.h -I$top/src -I$here $(pkg-config --cflags libuv)"
out=$build/fuzz
mkdir -p "$out"
for t in "$@"; do
	echo "run.sh: building $t"
	# shellcheck disable=SC2086
	$CC $cflags "$here/$t.c" "$build/src/liblitestream.a" $libs -o "$out/$t"
done
[ $run = yes ] || exit 0

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "$@"; do
	corpus=$out/corpus/$t
	art=$out/artifacts/$t
	mkdir -p "$corpus" "$art"
	seeds=
	[ -d "$here/seeds/$t" ] && seeds=$here/seeds/$t
	dict=
	[ -f "$here/dict/$t.dict" ] && dict=-dict=$here/dict/$t.dict
	echo "run.sh: running $t for ${secs}s"
	found=no
	# shellcheck disable=SC2086
	if ! "$out/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$art/" -print_final_stats=1 $keep $dict "$corpus" $seeds \
		>"$out/$t.log" 2>&1; then
		found=yes
	fi
	# Fork mode (-k) exits 0 after ignored crashes; its status lines count them.
	if grep -qE 'oom/timeout/crash: ([1-9]|[0-9]+/[1-9]|[0-9]+/[0-9]+/[1-9])' "$out/$t.log"; then
		found=yes
	fi
	grep -E '^#[0-9]+.*cov:' "$out/$t.log" | tail -1
	if [ $found = yes ]; then
		echo "run.sh: $t FOUND SOMETHING: see $out/$t.log and $art/"
		# The report and the reproducers in the output too: a CI build
		# directory does not outlive the run.
		tail -n 80 "$out/$t.log"
		for f in "$art"/*; do
			[ -f "$f" ] || continue
			echo "run.sh: reproducer $f ($(wc -c <"$f") bytes), base64 (base64 -d > crash; $t crash):"
			head -c 65536 "$f" | base64
		done
		status=1
	fi
done
exit $status
