"""litestream against a real OpenSSH sshd (the sshd fixture, sshd.py) over
SFTP: real SQLite databases written by real processes, the real binary,
the remote directory read directly to see what was stored. Replication,
kill -9 and resumption without re-uploading, restore equal, listings;
host keys unknown, changed or not the pinned one refused with their
fingerprint; a password user (made for the test) replicating, a refused
password named; the server killed mid-upload and
restarted.
"""
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

from lsutil import Replicator, assert_same, start_writers, wait_for, wait_writers
from sshd import fingerprint, free_port
from test_abs import ls_env
from test_replicate import make_db
from test_s3 import big_db, shadow_dir


def write_conf(path, db, sshd, remote, metrics_port=None, db_extra="", **replica):
    keys = {
        "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{remote}",
        "key-path": sshd.client_key,
        "known-hosts-file": sshd.known_hosts,
        "sync-interval": "200ms",
    }
    keys.update({k.replace("_", "-"): v for k, v in replica.items()})
    lines = "\n".join(f"{k} = {v}" for k, v in keys.items() if v is not None)
    metrics = f"metrics-addr = 127.0.0.1:{metrics_port}\n" if metrics_port else ""
    path.write_text(f"""[litestream]
socket = {db.parent / "ls.sock"}
{metrics}
[db app]
path = {db}
monitor-interval = 100ms
{db_extra}

[replica nas]
db = app
{lines}
""")
    return path


def remote_files(root):
    """{relative path: size} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = os.path.getsize(p)
    return out


def restore(run, conf, db, out, *extra):
    r = run("restore", "-config", conf, "-o", out, *extra, db, env=ls_env())
    assert r.returncode == 0, f"restore failed: {r.stderr}"
    return r


def test_replicate_kill_resume_restore(litestream_bin, run, tmp_path, sshd):
    """Replicate, kill -9, restart (same generation, nothing rewritten),
    restore equal; 0.3's layout under PATH; listings; metrics say sftp."""
    db, remote = tmp_path / "app.db", str(tmp_path / "remote" / "app")
    port = free_port()
    conf = write_conf(tmp_path / "ls.conf", db, sshd, remote, metrics_port=port)
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log1", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 1, "--count", 200, "--sleep", 0.002],
                                    ["--seed", 2, "--count", 200, "--sleep", 0.002]]))
    wait_for(lambda: any("/wal/" in k for k in remote_files(remote)),
             what="a WAL segment on the server")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert re.search(r'replica_type="sftp"', metrics), metrics[:2000]
    rep.kill()
    # A kill -9 mid-put leaves KEY.tmp, never a partial KEY (listings skip *.tmp).
    before = {k: v for k, v in remote_files(remote).items() if not k.endswith(".tmp")}
    gen = (shadow_dir(db) / "generation").read_text().strip()
    assert before and all(
        re.fullmatch(rf"generations/{gen}/(snapshots/[0-9a-f]{{8}}\.snapshot"
                     rf"|wal/[0-9a-f]{{8}}_[0-9a-f]{{8}}\.wal)\.lz4", k) for k in before), before
    mtimes = {k: os.stat(os.path.join(remote, k)).st_mtime_ns for k in before}

    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log2", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 3, "--count", 200]]))
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "resuming at" in log and "new generation" not in log, log
    assert "ERROR" not in log, log
    assert f"connected to 127.0.0.1:{sshd.port} as {sshd.user} (sftp)" in log, log
    after = remote_files(remote)
    for k, size in before.items():
        assert after.get(k) == size, f"{k} rewritten or removed"
        assert os.stat(os.path.join(remote, k)).st_mtime_ns == mtimes[k], f"{k} uploaded again"
    assert len(after) > len(before)
    restore(run, conf, db, tmp_path / "restored.db", "-parallelism", "3")
    assert_same(db, tmp_path / "restored.db")
    # The listing commands read the same directory.
    r = run("generations", "-config", conf, db, env=ls_env())
    assert r.returncode == 0 and gen in r.stdout and "nas" in r.stdout, r.stderr
    r = run("snapshots", "-config", conf, db, env=ls_env())
    assert r.returncode == 0 and gen in r.stdout, r.stderr
    # URL mode reads it too.
    url = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{remote}"
    r = run("restore", "-o", tmp_path / "by-url.db", url, env=ls_env(HOME=str(tmp_path / "nohome")))
    assert r.returncode != 0 and "not in" in r.stderr, r.stderr  # no known_hosts: refused


def test_retention_and_validation(litestream_bin, run, tmp_path, sshd):
    """Validation restores the replica on the side and finds it equal; then
    retention removes old files and leaves no directory empty; restore
    equal. Two runs, as for abs (a snapshot-interval snapshot races a
    validation)."""
    db, remote = tmp_path / "app.db", str(tmp_path / "remote")
    conf = write_conf(tmp_path / "ls.conf", db, sshd, remote, validation_interval="500ms")
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log1", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 13, "--count", 150, "--sleep", 0.01]]))
    wait_for(lambda: rep.text().count("validation ok") >= 2, timeout=30, what="two validations")
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text() and "validation:" not in rep.text(), rep.text()

    conf = write_conf(tmp_path / "ls.conf", db, sshd, remote,
                      db_extra="min-checkpoint-page-count = 20", snapshot_interval="1s",
                      retention="1s", retention_check_interval="500ms")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log2", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 14, "--count", 200, "--sleep", 0.01]]))
    wait_for(lambda: "retention: removed" in rep.text(), timeout=30, what="a retention pass")
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    snaps = sorted(k for k in remote_files(remote) if k.endswith(".snapshot.lz4"))
    assert snaps and not snaps[0].endswith("/00000000.snapshot.lz4"), snaps
    for d, subdirs, files in os.walk(remote):
        assert files or subdirs, f"{d} left empty"
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def refused(run, conf, db):
    r = run("generations", "-config", conf, db, env=ls_env(), timeout=60)
    assert r.returncode != 0, r.stdout
    return r.stderr


def test_host_keys_refused(litestream_bin, run, tmp_path, sshd):
    """An unknown host, a changed host key and a key other than the pinned
    one are refused, each naming the host and the offered key's SHA256
    fingerprint; nothing is written on the server."""
    db, remote = tmp_path / "app.db", str(tmp_path / "remote")
    make_db(db)
    where = f"127.0.0.1:{sshd.port}"
    fp = fingerprint(sshd.host_key + ".pub")

    empty = tmp_path / "known_hosts.empty"
    empty.write_text("")
    err = refused(run, write_conf(tmp_path / "a.conf", db, sshd, remote,
                                  known_hosts_file=empty), db)
    assert f"sftp {where}: host key refused: unknown host" in err and fp in err, err
    assert str(empty) in err, err

    # The right key pinned works; another one pinned is refused.
    conf = write_conf(tmp_path / "b.conf", db, sshd, remote, known_hosts_file=None,
                      host_key=sshd.known_hosts_line())
    r = run("generations", "-config", conf, db, env=ls_env())
    assert r.returncode == 0, r.stderr

    sshd.stop()
    sshd.new_host_key()
    sshd.start()
    new_fp = fingerprint(sshd.host_key + ".pub")
    assert new_fp != fp
    err = refused(run, write_conf(tmp_path / "c.conf", db, sshd, remote), db)
    assert f"sftp {where}: host key refused: it CHANGED" in err and new_fp in err, err
    err = refused(run, conf, db)
    assert "which is not the pinned host-key" in err and new_fp in err, err

    # The daemon does not ship to it either, and says why.
    rep = Replicator(litestream_bin, ["-config", tmp_path / "c.conf"], tmp_path / "log",
                     env=ls_env())
    wait_for(lambda: "it CHANGED" in rep.text(), timeout=20, what="the refusal in the log")
    rep.stop()
    assert not os.path.exists(remote), remote_files(remote)


@pytest.fixture
def password_user():
    """A system user made for the test with a known password (useradd,
    chpasswd; root only), removed afterwards; yields (name, password, a
    directory it owns)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("a password user needs root and useradd (passwd)")
    name, password = f"lst{os.getpid() % 100000}", "Pw-for-the-test-7"
    r = subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", name],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"useradd {name}: {r.stderr.strip()}")
    home = tempfile.mkdtemp(prefix="lst-sftp-")
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        os.chmod(home, 0o755)
        shutil.chown(home, name)
        yield name, password, home
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_password_user(litestream_bin, run, tmp_path, sshd, password_user):
    """A user who logs in with a password (no key): replicate as that user,
    the objects owned by it on the server, restore equal; the password is
    never in the log."""
    name, password, home = password_user
    db, remote = tmp_path / "app.db", os.path.join(home, "replica")
    make_db(db)
    conf = write_conf(tmp_path / "ls.conf", db, sshd, remote, key_path=None, password=password,
                      url=f"sftp://{name}@127.0.0.1:{sshd.port}{remote}")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 5, "--count", 100]]))
    wait_for(lambda: any("/wal/" in k for k in remote_files(remote)),
             what="a WAL segment on the server")
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert f"as {name} (sftp)" in log and password not in log, log
    with open(sshd.log_path, errors="replace") as f:
        assert f"Accepted password for {name}" in f.read()
    owners = {os.stat(os.path.join(d, f)).st_uid for d, _, fs in os.walk(remote) for f in fs}
    assert owners == {pwd.getpwnam(name).pw_uid}, owners
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_password_refused(litestream_bin, run, tmp_path, sshd):
    """A wrong password is refused, the message says the password was (and
    never shows it)."""
    db, remote = tmp_path / "app.db", str(tmp_path / "remote")
    make_db(db)
    conf = write_conf(tmp_path / "ls.conf", db, sshd, remote, key_path=None,
                      password="not-the-Password-42")
    err = refused(run, conf, db)
    assert f"authentication as {sshd.user} failed: the password was refused" in err, err
    assert "not-the-Password-42" not in err, err
    # In a URL the password is decoded and redacted.
    r = run("generations", f"sftp://{sshd.user}:s3cr%3At@127.0.0.1:0{remote}", env=ls_env())
    assert r.returncode != 0 and "s3cr" not in r.stderr and "REDACTED" in r.stderr, r.stderr


def test_server_killed_mid_upload(litestream_bin, run, tmp_path, sshd):
    """sshd and its sessions killed while the first snapshot goes up, then
    restarted: the replica reconnects and catches up; no partial object is
    ever visible under its name; restore equal."""
    db, remote = tmp_path / "app.db", str(tmp_path / "remote")
    big_db(db, 24)
    conf = write_conf(tmp_path / "ls.conf", db, sshd, remote)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_for(lambda: any(k.endswith(".tmp") for k in remote_files(remote)), timeout=30,
             interval=0.01, what="an upload in progress")
    sshd.stop()
    partial = remote_files(remote)
    assert not any(k.endswith(".lz4") and "snapshots" in k for k in partial), partial
    writers = start_writers(db, [["--seed", 7, "--count", 100, "--sleep", 0.005]])
    time.sleep(1.5)
    sshd.start()
    wait_writers(writers)
    wait_for(lambda: any("/wal/" in k for k in remote_files(remote)), timeout=30,
             what="shipping after the restart")
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert f"127.0.0.1:{sshd.port}" in log, log
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    assert not any(k.endswith(".tmp") for k in remote_files(remote)), remote_files(remote)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only), grown later with .grow()."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full remote disk needs a tmpfs mount, which needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")

    class Disk:
        path = mnt

        def grow(self):
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)

    try:
        yield Disk()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_full_remote_disk(litestream_bin, run, tmp_path, sshd, small_disk):
    """The remote file system full (a 1 MiB tmpfs, a 3 MiB snapshot): the
    error says so, with the free space; nothing is lost: once there is room
    the replica catches up and restores equal."""
    db, remote = tmp_path / "app.db", str(small_disk.path / "app")
    big_db(db, 3)
    conf = write_conf(tmp_path / "ls.conf", db, sshd, remote)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_for(lambda: "no space left on the remote file system" in rep.text(), timeout=20,
             what="the full disk in the log")
    assert re.search(r"write \S+\.snapshot\.lz4\.tmp on 127\.0\.0\.1:\d+: no space left on the "
                     r"remote file system \(\d+ bytes free\)", rep.text()), rep.text()
    assert not any(k.endswith(".tmp") for k in remote_files(remote)), "the partial file was left behind"
    writers = start_writers(db, [["--seed", 8, "--count", 50]])
    small_disk.grow()
    wait_writers(writers)
    wait_for(lambda: "replica healthy again" in rep.text(), timeout=30, what="the catch-up")
    assert rep.stop() == 0, rep.text()
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


@pytest.mark.timing
def test_stalled_server(litestream_bin, run, tmp_path, sshd):
    """The server's sessions frozen (SIGSTOP) mid-upload: libssh would wait
    forever; the watchdog drops the connection after the stall timeout, the
    error says so, and once the server moves again the replica catches up."""
    db, remote = tmp_path / "app.db", str(tmp_path / "remote")
    big_db(db, 24)
    conf = write_conf(tmp_path / "ls.conf", db, sshd, remote)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log",
                     env=ls_env(LITESTREAM_SFTP_STALL_TIMEOUT="1s"))
    wait_for(lambda: any(k.endswith(".tmp") for k in remote_files(remote)), timeout=30,
             interval=0.01, what="an upload in progress")
    frozen = sshd.freeze()
    try:
        wait_for(lambda: "nothing moved for 1000ms: connection dropped" in rep.text(),
                 timeout=10, what="the stall in the log")
    finally:
        sshd.thaw(frozen)
    wait_for(lambda: "replica healthy again" in rep.text(), timeout=20, what="the catch-up")
    assert rep.stop() == 0, rep.text()
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


PEER = os.environ.get("LITESTREAM_PEER_0313")


def peer_conf(path, db, sshd, remote):
    path.write_text(f"""dbs:
  - path: {db}
    replicas:
      - type: sftp
        host: 127.0.0.1:{sshd.port}
        user: {sshd.user}
        key-path: {sshd.client_key}
        path: {remote}
        sync-interval: 100ms
""")
    return path


def test_replicas_move_both_ways_with_0313(litestream_bin, run, tmp_path, sshd):
    """Litestream 0.3.13 restores what we wrote over SFTP, and we restore
    what it wrote: the same layout under PATH. Skipped unless
    LITESTREAM_PEER_0313 names the 0.3.13 binary."""
    if not PEER:
        pytest.skip("LITESTREAM_PEER_0313 is not set (path of a Litestream 0.3.13 binary)")
    db, remote = tmp_path / "app.db", str(tmp_path / "remote-ours")
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", write_conf(tmp_path / "ls.conf", db, sshd,
                                                            remote)],
                     tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 31, "--count", 150]]))
    assert rep.stop() == 0, rep.text()
    out = tmp_path / "by-peer.db"
    r = subprocess.run([PEER, "restore", "-config", peer_conf(tmp_path / "p.yml", db, sshd, remote),
                        "-o", out, db], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert_same(db, out)

    db2, remote2 = tmp_path / "peer.db", str(tmp_path / "remote-peer")
    make_db(db2)
    peer = Replicator(PEER, ["-config", peer_conf(tmp_path / "p2.yml", db2, sshd, remote2)],
                      tmp_path / "peer.log")
    wait_writers(start_writers(db2, [["--seed", 32, "--count", 150]]))
    wait_for(lambda: any("/wal/" in k for k in remote_files(remote2)), what="0.3.13's segments")
    time.sleep(1.5)  # its sync-interval, twice over
    assert peer.stop() == 0, peer.text()
    restore(run, write_conf(tmp_path / "ls2.conf", db2, sshd, remote2), db2,
            tmp_path / "by-us.db")
    assert_same(db2, tmp_path / "by-us.db")
