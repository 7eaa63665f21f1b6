"""[dir NAME] sections: a directory of databases replicated as a whole,
databases created, removed and renamed while `litestream replicate` runs,
files that are not WAL databases skipped, and 200 databases in one
process (the 1,000 are bench/many.py's). Real SQLite writers, a real
control socket, real restores through the configuration."""
import os
import sqlite3
import time

from ctlutil import call, make_db, sockdir  # noqa: F401 (fixture)
from lsutil import Replicator, assert_same, wait_for


def make_wal(path, rows=1):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    make_db(path)
    conn = sqlite3.connect(path, isolation_level=None)
    for i in range(rows):
        conn.execute("INSERT INTO kv (v) VALUES (?)", (f"{os.path.basename(path)}-{i}",))
    conn.close()


def write_conf(tmp_path, sock, tenants, backup, extra="", monitor="1s"):
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"""[litestream]
socket = {sock}
[dir tenants]
path = {tenants}
monitor-interval = {monitor}
{extra}
[replica near]
db = tenants
type = file
path = {backup}
""")
    return conf


def snapshotted(backup, rel):
    gens = os.path.join(backup, rel, "generations")
    if not os.path.isdir(gens):
        return False
    return any(os.listdir(os.path.join(gens, g, "snapshots"))
               for g in os.listdir(gens) if os.path.isdir(os.path.join(gens, g, "snapshots")))


def names(sock):
    st, body, _ = call(sock, "GET", "/v1/status")
    assert st == 200, body
    return {d["name"] for d in body["dbs"]}


def sync_wait(sock, name):
    st, body, _ = call(sock, "POST", f"/v1/dbs/{name}/sync?wait=1&timeout=20s")
    assert st == 200, body


def test_dir_lifecycle(run, litestream_bin, tmp_path, sockdir):  # noqa: F811
    tenants, backup = tmp_path / "tenants", tmp_path / "backup"
    sock = os.path.join(sockdir, "ctl.sock")
    for n in ("acme", "globex"):
        make_wal(str(tenants / f"{n}.db"), rows=3)
    (tenants / "notes.db").write_bytes(b"not a database, just text " * 10)
    rollback = sqlite3.connect(str(tenants / "legacy.db"), isolation_level=None)
    rollback.execute("CREATE TABLE t (x)")
    rollback.close()
    (tenants / "readme.txt").write_text("ignored: does not match *.db")
    conf = write_conf(tmp_path, sock, tenants, backup)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    try:
        wait_for(lambda: os.path.exists(sock) and names(sock) == {"tenants/acme.db", "tenants/globex.db"},
                 what="the two databases")
        wait_for(lambda: snapshotted(backup, "acme.db") and snapshotted(backup, "globex.db"),
                 what="first snapshots")

        # Created after start: picked up within a second or so.
        t0 = time.monotonic()
        make_wal(str(tenants / "initech.db"), rows=5)
        wait_for(lambda: "tenants/initech.db" in names(sock), timeout=5, interval=0.02,
                 what="the new database")
        picked = time.monotonic() - t0
        assert picked < 2.0, f"took {picked:.2f}s"
        conn = sqlite3.connect(str(tenants / "initech.db"), isolation_level=None)
        conn.execute("INSERT INTO kv (v) VALUES ('after start')")
        conn.close()
        sync_wait(sock, "tenants/initech.db")

        # The skipped files stay skipped (one line each) however often they change.
        rollback = sqlite3.connect(str(tenants / "legacy.db"), isolation_level=None)
        for i in range(5):
            rollback.execute("INSERT INTO t VALUES (?)", (i,))
        rollback.close()
        with open(tenants / "notes.db", "ab") as f:
            f.write(b"more text")

        # Removed: closed, no errors after; renamed: removed + added.
        for suffix in ("", "-wal", "-shm"):
            p = tenants / f"globex.db{suffix}"
            if p.exists():
                p.unlink()
        wait_for(lambda: "tenants/globex.db" not in names(sock), what="globex removed")
        os.rename(tenants / "acme.db", tenants / "acme2.db")
        wait_for(lambda: names(sock) == {"tenants/acme2.db", "tenants/initech.db"},
                 what="acme renamed")
        wait_for(lambda: snapshotted(backup, "acme2.db"), what="acme2's snapshot")
        time.sleep(1.5)  # monitor ticks: a closed database must not keep logging
        assert rep.proc.poll() is None
    finally:
        rc = rep.stop()
    log = rep.text()
    assert rc == 0, log
    assert log.count("notes.db: [dir tenants]: skipped: not a SQLite database") == 1, log
    assert log.count("legacy.db: [dir tenants]: skipped: a SQLite database in rollback-journal mode") == 1, log
    assert "readme.txt" not in log
    assert "globex.db: closed" in log and "acme.db: closed" in log, log
    assert " ERROR " not in log, log
    assert "handles still open" not in log

    # Each is an ordinary replica of one database, found through the config.
    out = tmp_path / "restored.db"
    r = run("restore", "-config", conf, "-o", out, tenants / "initech.db")
    assert r.returncode == 0, r.stderr
    assert_same(str(tenants / "initech.db"), str(out))
    r = run("restore", "-o", tmp_path / "by-url.db", f"file://{backup}/acme2.db")
    assert r.returncode == 0, r.stderr
    assert_same(str(tenants / "acme2.db"), str(tmp_path / "by-url.db"))
    r = run("generations", "-config", conf, tenants / "initech.db")
    assert r.returncode == 0 and "near" in r.stdout, r.stdout + r.stderr
    r = run("restore", "-config", conf, "-o", tmp_path / "x.db", tenants / "nope.txt")
    assert r.returncode != 0 and "not found" in r.stderr


def fds_of(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_dir_200_databases(run, litestream_bin, tmp_path, sockdir):  # noqa: F811
    """200 databases in 4 subdirectories, recursive: all snapshot, the
    process holds a bounded number of descriptors, one restores."""
    tenants, backup = tmp_path / "tenants", tmp_path / "backup"
    sock = os.path.join(sockdir, "ctl.sock")
    rels = [f"r{r}/t{i:03d}.db" for r in range(4) for i in range(50)]
    for rel in rels:
        make_wal(str(tenants / rel))
    conf = write_conf(tmp_path, sock, tenants, backup, "recursive = true\n")
    t0 = time.monotonic()
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    try:
        wait_for(lambda: all(snapshotted(backup, rel) for rel in rels), timeout=60, interval=0.2,
                 what="200 first snapshots")
        took = time.monotonic() - t0
        assert len(names(sock)) == 200
        fds = fds_of(rep.proc.pid)
        # A new subdirectory is watched too.
        make_wal(str(tenants / "r9" / "late.db"))
        wait_for(lambda: "tenants/r9/late.db" in names(sock), timeout=5, what="a database in a new subdirectory")
        conn = sqlite3.connect(str(tenants / "r2/t007.db"), isolation_level=None)
        conn.execute("INSERT INTO kv (v) VALUES ('while 200 run')")
        conn.close()
        sync_wait(sock, "tenants/r2/t007.db")
    finally:
        rc = rep.stop()
    log = rep.text()
    assert rc == 0, log
    assert " ERROR " not in log, log
    print(f"200 databases: first snapshots in {took:.1f}s, {fds} descriptors")
    assert fds < 200 * 7, fds  # 6 per idle database (db_conn.c), a few for the process
    out = tmp_path / "restored.db"
    r = run("restore", "-config", conf, "-o", out, tenants / "r2/t007.db")
    assert r.returncode == 0, r.stderr
    assert_same(str(tenants / "r2/t007.db"), str(out))


def test_open_file_limit(run, litestream_bin, tmp_path, sockdir):  # noqa: F811
    """The soft limit is raised to the hard one; a hard limit too low for
    the databases stops the start with a message saying so."""
    import resource
    tenants, backup = tmp_path / "tenants", tmp_path / "backup"
    for i in range(20):
        make_wal(str(tenants / f"t{i}.db"))
    conf = write_conf(tmp_path, os.path.join(sockdir, "ctl.sock"), tenants, backup)

    def limit(soft, hard):
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    r = run("replicate", "-config", conf, preexec_fn=limit(100, 100), timeout=30)
    assert r.returncode == 1, r.stderr
    assert "the open file limit (100, hard limit 100) is too low for 20 databases with 20 replicas" in r.stderr
    # Soft 100 under a hard 4096: raised, and -once ships all twenty.
    r = run("replicate", "-once", "-config", conf, preexec_fn=limit(100, 4096), timeout=60)
    assert r.returncode == 0, r.stderr
    assert all(snapshotted(backup, f"t{i}.db") for i in range(20))


def shm_resident_kib(pid):
    """Resident KiB of the process's mappings of *.db-shm files (smaps)."""
    total, in_shm = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:
                in_shm = len(head) >= 6 and head[5].endswith(".db-shm")
            elif in_shm and head[0] == "Rss:":
                total += int(head[1])
    return total


def test_idle_databases_drop_shm_pages(run, litestream_bin, tmp_path, sockdir):  # noqa: F811
    """Databases at rest leave their WAL-index pages out of our resident
    memory (db_conn_shm_release()), and a write after rest ships and
    restores as ever: twice, so the second rest follows a woken one."""
    tenants, backup = tmp_path / "tenants", tmp_path / "backup"
    sock = os.path.join(sockdir, "ctl.sock")
    for i in range(20):
        make_wal(str(tenants / f"t{i:02d}.db"), rows=50)
    conf = write_conf(tmp_path, sock, tenants, backup, monitor="100ms")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    try:
        wait_for(lambda: all(snapshotted(backup, f"t{i:02d}.db") for i in range(20)),
                 timeout=30, what="20 first snapshots")
        for cycle in range(2):
            wait_for(lambda: shm_resident_kib(rep.proc.pid) == 0, timeout=20, interval=0.1,
                     what=f"no resident -shm pages (cycle {cycle})")
            for i in (3, 11):
                conn = sqlite3.connect(str(tenants / f"t{i:02d}.db"), isolation_level=None)
                conn.execute("INSERT INTO kv (v) VALUES (?)", (f"after rest {cycle}",))
                conn.close()
                sync_wait(sock, f"tenants/t{i:02d}.db")
            for i in (3, 11):
                out = tmp_path / f"restored-{cycle}-{i}.db"
                r = run("restore", "-o", out, f"file://{backup}/t{i:02d}.db")
                assert r.returncode == 0, r.stderr
                assert_same(str(tenants / f"t{i:02d}.db"), str(out))
    finally:
        rc = rep.stop()
    log = rep.text()
    assert rc == 0, log
    assert " ERROR " not in log, log


QUEUE = "/proc/sys/fs/inotify/max_queued_events"


def test_lost_events_rescan(litestream_bin, tmp_path, sockdir):  # noqa: F811
    """The kernel's event queue overflows (its length lowered, as root, for
    the inotify descriptor made at start only): the [dir] says so and
    rescans, and every database created meanwhile is replicated."""
    import pytest
    if os.geteuid() != 0 or not os.access(QUEUE, os.W_OK):
        pytest.skip("needs root to lower fs.inotify.max_queued_events")
    tenants, backup = tmp_path / "tenants", tmp_path / "backup"
    tenants.mkdir()
    sock = os.path.join(sockdir, "ctl.sock")
    conf = write_conf(tmp_path, sock, tenants, backup)
    with open(QUEUE) as f:
        saved = f.read().strip()
    try:
        with open(QUEUE, "w") as f:
            f.write("4")
        rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
        wait_for(lambda: os.path.exists(sock), what="the control socket")
    finally:
        with open(QUEUE, "w") as f:
            f.write(saved)
    try:
        want = {f"tenants/t{i:02d}.db" for i in range(30)}
        for i in range(30):
            make_wal(str(tenants / f"t{i:02d}.db"))
        wait_for(lambda: names(sock) == want, timeout=20, what="all 30 databases")
        wait_for(lambda: all(snapshotted(backup, f"t{i:02d}.db") for i in range(30)),
                 timeout=30, what="30 first snapshots")
    finally:
        rc = rep.stop()
    log = rep.text()
    assert rc == 0, log
    assert "file-system events were lost (the kernel's queue overflowed); rescanning" in log, log
    assert " ERROR " not in log, log
