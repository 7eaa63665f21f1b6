#!/bin/bash
# Stops what rgw-up.sh started under DIR, by its pid files: radosgw first,
# then the OSD (its in-memory objects are dropped), then the monitor, each
# with SIGTERM and up to two seconds of grace before SIGKILL. Leaves DIR
# and its logs in place; idempotent.
#
# usage: rgw-down.sh DIR
set -u

[ $# -eq 1 ] || { echo "usage: rgw-down.sh DIR" >&2; exit 2; }
D=$(realpath -m "$1")

# A daemon that exited but was not reaped yet (a zombie) counts as gone.
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# One at a time: radosgw killed together with the OSD it talks to waits
# out its timeouts instead of exiting.
for name in client.rgw.a osd.0 mon.a; do
	f="$D/run/$name.pid"
	[ -s "$f" ] || continue
	p=$(cat "$f")
	rm -f "$f"
	# Only a process still running one of our daemons: a stale pid file
	# must not kill whatever reused the number.
	case "$(cat "/proc/$p/comm" 2>/dev/null)" in
	radosgw | ceph-osd | ceph-mon) ;;
	*) continue ;;
	esac
	kill "$p" 2>/dev/null || continue
	for _ in $(seq 1 100); do
		alive "$p" || break
		sleep 0.02
	done
	if alive "$p"; then
		echo "rgw-down: $name (pid $p) ignored SIGTERM for 2 s; killing it" >&2
		kill -9 "$p" 2>/dev/null
	fi
done
exit 0
