"""Starting and stopping the way containers and systemd need: replicate
-once, -force-snapshot, -enforce-retention, -restore-if-db-not-exists,
shutdown-sync-timeout and the service manager's notifications (a real
datagram socket as $NOTIFY_SOCKET)."""
import os
import socket
import sqlite3
import threading
import time

from lsutil import Replicator, assert_same, restore, wait_for
from test_replicate import make_db


def write_rows(db, n, start=0):
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    for i in range(start, start + n):
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (1, ?, randomblob(300))", (i,))
    return conn  # kept open by the caller: the WAL stays, as beside a live application


def conf(tmp_path, db, replicas, extra=""):
    text = f"[litestream]\nsocket = {tmp_path / 'ls.sock'}\n{extra}\n[db app]\npath = {db}\n"
    for name, url in replicas.items():
        text += f"\n[replica {name}]\ndb = app\nurl = {url}\n"
    path = tmp_path / "litestream.conf"
    path.write_text(text)
    return path


def snapshots(replica):
    return sorted(os.path.join(r, f) for r, _, fs in os.walk(replica) for f in fs if f.endswith(".snapshot.lz4"))


def generations(replica):
    g = replica / "generations"
    return sorted(os.listdir(g)) if g.exists() else []


def test_once_ships_everything_and_exits(run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    app = write_rows(db, 500)
    try:
        r = run("replicate", "-once", "-config", conf(tmp_path, db, {"r": f"file://{replica}"}))
        assert r.returncode == 0, r.stderr
        app.execute("INSERT INTO t (writer, n) VALUES (2, 0)")  # and a second run ships what is new
        r = run("replicate", "-once", "-config", tmp_path / "litestream.conf")
        assert r.returncode == 0, r.stderr
    finally:
        app.close()
    assert len(generations(replica)) == 1, "the second run continues the generation"
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_once_names_the_replica_that_could_not_take_it(run, tmp_path):
    db, good = tmp_path / "app.db", tmp_path / "good"
    make_db(db)
    (tmp_path / "not-a-dir").write_text("")
    app = write_rows(db, 50)
    try:
        r = run("replicate", "-once", "-config",
                conf(tmp_path, db, {"good": f"file://{good}", "broken": f"file://{tmp_path}/not-a-dir/r"}))
    finally:
        app.close()
    assert r.returncode == 1, r.stderr
    assert "app.db(broken): could not ship everything" in r.stderr
    assert "(good): could not" not in r.stderr
    restore(run, f"file://{good}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_once_refuses_exec(run, tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    r = run("replicate", "-once", "-exec", "true", "-config", conf(tmp_path, db, {"r": f"file://{tmp_path}/r"}))
    assert r.returncode == 2
    assert "-once cannot be used with -exec" in r.stderr


def test_force_snapshot_and_enforce_retention(run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    app = write_rows(db, 100)
    try:
        cfg = conf(tmp_path, db, {"r": f"file://{replica}"})
        assert run("replicate", "-once", "-config", cfg).returncode == 0
        assert len(snapshots(replica)) == 1
        r = run("replicate", "-once", "-config", cfg)
        assert r.returncode == 0 and "snapshot written" not in r.stderr, r.stderr
        # A snapshot is named by its WAL index: this one replaces the first.
        before = os.stat(snapshots(replica)[0]).st_mtime_ns
        r = run("replicate", "-once", "-force-snapshot", "-config", cfg)
        assert r.returncode == 0, r.stderr
        assert "snapshot written" in r.stderr, "-force-snapshot ships a snapshot"
        assert os.stat(snapshots(replica)[0]).st_mtime_ns != before
        # An older generation, then retention of one second: -enforce-retention
        # removes it before exiting, and keeps the current one whole.
        old = generations(replica)
        (tmp_path / ".app.db-litestream").rename(tmp_path / "old-shadow")
        app.execute("INSERT INTO t (writer, n) VALUES (3, 0)")
        cfg = conf(tmp_path, db, {"r": f"file://{replica}"})
        cfg.write_text(cfg.read_text() + "retention = 1s\n")
        assert run("replicate", "-once", "-config", cfg).returncode == 0
        assert len(generations(replica)) == 2
        time.sleep(1.5)
        app.execute("INSERT INTO t (writer, n) VALUES (4, 0)")
        r = run("replicate", "-once", "-enforce-retention", "-config", cfg)
        assert r.returncode == 0, r.stderr
        assert "retention: removed" in r.stderr
    finally:
        app.close()
    assert old[0] not in generations(replica), "the old generation is past retention"
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_restore_if_db_not_exists(run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    write_rows(db, 200).close()
    cfg = conf(tmp_path, db, {"r": f"file://{replica}"})
    assert run("replicate", "-once", "-config", cfg).returncode == 0
    expected = tmp_path / "expected.db"
    restore(run, f"file://{replica}", expected)

    # Present: left alone.
    r = run("replicate", "-once", "-restore-if-db-not-exists", "-config", cfg)
    assert r.returncode == 0 and "restoring" not in r.stderr, r.stderr

    # Missing, with a backup: restored before replication starts.
    for f in os.listdir(tmp_path):
        if f.startswith("app.db") or f == ".app.db-litestream":
            os.system(f"rm -rf '{tmp_path / f}'")
    r = run("replicate", "-once", "-restore-if-db-not-exists", "-config", cfg)
    assert r.returncode == 0, r.stderr
    assert "restoring it from its replicas" in r.stderr
    assert_same(expected, db)

    # Missing, without a backup: a first start, empty.
    other = tmp_path / "new.db"
    cfg2 = conf(tmp_path, other, {"r": f"file://{tmp_path}/empty-replica"})
    r = run("replicate", "-once", "-restore-if-db-not-exists", "-config", cfg2)
    assert r.returncode == 0, r.stderr
    assert "no backup found" in r.stderr and not other.exists()

    # Missing, with a broken replica: the start stops, naming the database,
    # and leaves no file behind.
    broken = tmp_path / "broken"
    os.system(f"cp -r '{replica}' '{broken}'")
    for s in snapshots(broken):
        with open(s, "r+b") as f:
            f.seek(20)
            f.write(b"\xff" * 64)
    cfg3 = conf(tmp_path, other, {"r": f"file://{broken}"})
    r = run("replicate", "-once", "-restore-if-db-not-exists", "-config", cfg3)
    assert r.returncode == 1
    assert f"-restore-if-db-not-exists: {other}:" in r.stderr, r.stderr
    assert not other.exists() and not any(p.name.startswith("new.db") for p in tmp_path.iterdir())


def black_hole():
    """A TCP server that accepts connections and never answers: a replica that hangs."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return srv, held


def test_shutdown_sync_timeout_names_what_is_pending(litestream_bin, tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    srv, _ = black_hole()
    port = srv.getsockname()[1]
    cfg = conf(tmp_path, db, {"hung": f"s3://bucket/app?endpoint=http://127.0.0.1:{port}"},
               extra="shutdown-sync-timeout = 1s")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
    rep = Replicator(litestream_bin, ["-config", cfg], tmp_path / "log", env=env)
    try:
        app = write_rows(db, 20)
        wait_for(lambda: "replicating to" in rep.text(), what="start")
        time.sleep(0.3)
        t0 = time.monotonic()
        rc = rep.stop(timeout=20)
        took = time.monotonic() - t0
        app.close()
    finally:
        srv.close()
    assert rc == 1, rep.text()
    assert took < 10, f"exit took {took:.1f}s"
    log = rep.text()
    assert "shutdown-sync-timeout (1000 ms) passed" in log
    assert "app.db(hung): shutdown-sync-timeout: not shipped" in log


class Notifications:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.path = path
        self.got = []  # (monotonic time, message)

    def poll(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.got.append((time.monotonic(), self.sock.recv(4096).decode()))
            except socket.timeout:
                pass

    def wait(self, prefix, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, m in self.got:
                if m.startswith(prefix):
                    return t, m
            self.poll(0.05)
        raise AssertionError(f"no {prefix} in {self.got}")


def test_sd_notify_ready_after_first_shipment_watchdog_stopping(litestream_bin, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    app = write_rows(db, 100)
    n = Notifications(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=str(n.path), WATCHDOG_USEC="200000")
    rep = Replicator(litestream_bin, ["-config", conf(tmp_path, db, {"r": f"file://{replica}"})],
                     tmp_path / "log", env=env)
    try:
        n.wait("READY=1")
        # Only once the first sync is in the replica.
        assert snapshots(replica), "READY=1 before the first shipment"
        n.wait("STATUS=1 database, 1 replica")
        n.poll(0.6)
        pings = [t for t, m in n.got if m == "WATCHDOG=1"]
        assert len(pings) >= 4, n.got  # every 100 ms: half of WATCHDOG_USEC
        assert rep.stop() == 0, rep.text()
        n.poll(0.2)
        assert any(m == "STOPPING=1" for _, m in n.got), n.got
    finally:
        app.close()
        rep.stop()


def test_sd_notify_not_ready_while_a_replica_cannot_ship(litestream_bin, tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    (tmp_path / "not-a-dir").write_text("")
    n = Notifications(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=str(n.path))
    rep = Replicator(litestream_bin, ["-config", conf(tmp_path, db, {"r": f"file://{tmp_path}/not-a-dir/r"})],
                     tmp_path / "log", env=env)
    try:
        wait_for(lambda: "Not a directory" in rep.text(), what="the replica's error")
        n.poll(1.0)
        assert not any(m.startswith("READY=1") for _, m in n.got), n.got
    finally:
        rep.stop()
