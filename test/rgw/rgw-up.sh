#!/bin/bash
# Starts a throwaway S3 server for the tests: Ceph's RADOS Gateway over a
# one-node cluster (one monitor, one OSD keeping its objects in memory, no
# manager), all on 127.0.0.1, everything under DIR. Needs Debian 12's
#   radosgw ceph-mon ceph-osd          (deps/install --test)
# Data lives in the OSD's memory and is gone when rgw-down.sh DIR stops it.
#
# usage: rgw-up.sh DIR RGW_PORT MON_PORT ACCESS_KEY SECRET_KEY
#
# The caller picks two free ports. On success prints "rgw ready on
# 127.0.0.1:RGW_PORT" and exits 0 with three daemons running (pid files in
# DIR/run). On failure stops whatever it started, prints the tail of every
# log to stderr and exits 1. Set RGW_TRACE=1 to time each step, and
# RGW_EXTRA_CONF to lines for radosgw's section of ceph.conf (the credential
# tests turn its STS on there, which changes how it answers a wrong secret,
# so the shared server goes without).
set -euo pipefail

usage() { echo "usage: rgw-up.sh DIR RGW_PORT MON_PORT ACCESS_KEY SECRET_KEY" >&2; exit 2; }
[ $# -eq 5 ] || usage
D=$(realpath -m "$1")
PORT=$2
MONPORT=$3
AK=$4
SK=$5
HERE=$(dirname "$(realpath "$0")")
CONF="$D/ceph.conf"

t0=$(date +%s%N)
trace() { [ -z "${RGW_TRACE:-}" ] || echo "rgw-up: $(( ($(date +%s%N) - t0) / 1000000 )) ms: $*" >&2; }

step="checking"
fail() {
	echo "rgw-up: failed while $step${1:+: $1}" >&2
	for f in "$D"/log/*; do
		[ -s "$f" ] || continue
		echo "--- tail of $f" >&2
		tail -n 25 "$f" >&2
	done
	bash "$HERE/rgw-down.sh" "$D" || true
	exit 1
}
trap 'fail "command failed (line $LINENO)"' ERR

for cmd in radosgw radosgw-admin ceph ceph-mon ceph-osd ceph-authtool monmaptool uuidgen curl; do
	command -v "$cmd" >/dev/null || { echo "rgw-up: $cmd not found (deps/install --test)" >&2; exit 1; }
done
# A leftover cluster in DIR would hold the pid files and ports.
[ -d "$D/run" ] && bash "$HERE/rgw-down.sh" "$D"
for p in "$MONPORT" "$PORT"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "rgw-up: port $p on 127.0.0.1 is already in use" >&2
		exit 1
	fi
done

rm -rf "$D"
mkdir -p "$D"/{mon.a,osd.0,rgw,run,log}
FSID=$(uuidgen)
# Authentication between the daemons is off and messages are only
# CRC-checked: nothing here leaves the loopback interface. The short paxos
# intervals are what let the monitor commit the new OSD and pools in well
# under a second instead of about ten.
cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MONPORT]
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms mon client mode = crc
ms client mode = crc
ms mon service mode = crc
ms service mode = crc
ms mon cluster mode = crc
ms cluster mode = crc
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
keyring = $D/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon osd full ratio = .99
mon data avail crit = 1
mon data avail warn = 2
paxos propose interval = 0.01
paxos min wait = 0.001
osd heartbeat grace = 60
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 460
osd max object namespace len = 64
[mon.a]
mon data = $D/mon.a
[osd.0]
osd data = $D/osd.0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $D/rgw
rgw dns name = s3.localhost
rgw thread pool size = 32
${RGW_EXTRA_CONF:-}
EOF

step="creating the monitor"
ceph-authtool -c "$CONF" --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool -c "$CONF" "$D/keyring" --gen-key -n client.admin \
	--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MONPORT]" "$D/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" 2>>"$D/log/mon-mkfs.stderr"
step="starting the monitor"
ceph-mon -c "$CONF" -i a 2>>"$D/log/mon.stderr"
trace "monitor started"

step="registering the OSD"
OSD_UUID=$(uuidgen)
timeout 60 ceph -c "$CONF" --connect-timeout 30 osd new "$OSD_UUID" 0 >/dev/null 2>>"$D/log/ceph-cli.stderr"
trace "osd registered"
step="starting the OSD"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" 2>>"$D/log/osd-mkfs.stderr"
ceph-osd -c "$CONF" -i 0 2>>"$D/log/osd.stderr"
trace "osd started"

# radosgw returns once it has created its pools and forked into the
# background; that needs the OSD up.
step="starting radosgw"
timeout 120 radosgw -c "$CONF" -n client.rgw.a 2>>"$D/log/rgw.stderr"
trace "radosgw started"
step="creating the S3 user"
timeout 60 radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
	--access-key="$AK" --secret-key="$SK" >/dev/null 2>>"$D/log/radosgw-admin.stderr"
trace "user created"

step="waiting for HTTP on 127.0.0.1:$PORT"
for _ in $(seq 1 300); do
	if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
		trace "http answers"
		echo "rgw ready on 127.0.0.1:$PORT"
		exit 0
	fi
	sleep 0.1
done
fail "no answer within 30 s"
