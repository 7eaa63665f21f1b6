"""What the sidecar costs the application it watches: commits ship in groups,
a lone commit ships at once, the WAL keeps restarting (and so stays small)
under a steady writer, a writer with no busy timeout never sees
SQLITE_BUSY, and a shadow WAL tail lost in a host crash is either copied
again or answered with a new generation, never shipped wrong. Real
databases written by real processes; the figures themselves live in
bench/replicate.py."""
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from lsutil import Replicator, assert_same, restore, start_writers, wait_for, wait_writers
from test_replicate import make_db

PAGE = 4096
FRAME = PAGE + 24


def replica_segments(replica):
    """(generation, index, offset) of every WAL segment in a file replica."""
    out = []
    gdir = os.path.join(replica, "generations")
    for gen in os.listdir(gdir) if os.path.isdir(gdir) else []:
        wdir = os.path.join(gdir, gen, "wal")
        for name in os.listdir(wdir) if os.path.isdir(wdir) else []:
            if name.endswith(".wal.lz4") and "_" in name:
                idx, off = name[:-len(".wal.lz4")].split("_")
                out.append((gen, int(idx, 16), int(off, 16)))
    return sorted(out)


def generations(replica):
    gdir = os.path.join(replica, "generations")
    return sorted(os.listdir(gdir)) if os.path.isdir(gdir) else []


def has_snapshot(replica):
    return any(os.listdir(os.path.join(replica, "generations", g, "snapshots"))
               for g in generations(replica)
               if os.path.isdir(os.path.join(replica, "generations", g, "snapshots")))


def write_config(tmp_path, db, replica, **db_keys):
    lines = [f"[db app]", f"path = {db}"] + [f"{k.replace('_', '-')} = {v}" for k, v in db_keys.items()]
    conf = tmp_path / "litestream.conf"
    conf.write_text("\n".join(lines) + f"\n\n[replica r]\ndb = app\nurl = file://{replica}\n")
    return conf


class WalPeak(threading.Thread):
    """The largest size the -wal file reached while it ran."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.wal, self.peak, self.stop_evt = f"{db}-wal", 0, threading.Event()

    def run(self):
        while not self.stop_evt.is_set():
            try:
                self.peak = max(self.peak, os.path.getsize(self.wal))
            except FileNotFoundError:
                pass
            time.sleep(0.002)

    def stop(self):
        self.stop_evt.set()
        self.join()
        return self.peak


@pytest.mark.timing
def test_burst_ships_in_groups(litestream_bin, run, tmp_path):
    """5,000 commits from two processes: far fewer segments than commits."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_for(lambda: has_snapshot(replica), what="first snapshot")
    t0 = time.monotonic()
    wait_writers(start_writers(db, [["--seed", 1, "--count", 2500], ["--seed", 2, "--count", 2500]]))
    seconds = time.monotonic() - t0
    assert rep.stop() == 0, rep.text()
    segs = replica_segments(replica)
    # At most one segment in flight, and not more often than every 10 ms.
    assert 0 < len(segs) < 5000, f"{len(segs)} segments for 5000 commits"
    assert len(segs) <= seconds * 100 * 1.2 + 20, f"{len(segs)} segments in {seconds:.1f} s"
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def events_only_replicator(litestream_bin, tmp_path):
    """A database replicated with monitor-interval an hour: only fs events
    start its syncs. Returns (db, replica, Replicator) after the first
    snapshot."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conf = write_config(tmp_path, db, replica, monitor_interval="1h", checkpoint_interval="1h")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_for(lambda: has_snapshot(replica), what="first snapshot")
    return db, replica, rep


@pytest.mark.timing
def test_lone_commit_ships_without_a_timer(litestream_bin, tmp_path):
    """After an idle second a single commit reaches the replica at once: the
    fs event starts the sync, not monitor-interval (an hour here)."""
    db, replica, rep = events_only_replicator(litestream_bin, tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    for i in range(3):
        time.sleep(1.0)
        before = len(replica_segments(replica))
        t0 = time.monotonic()
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (0, ?, x'00')", (i,))
        wait_for(lambda: len(replica_segments(replica)) > before, timeout=5, interval=0.002,
                 what="the commit's segment")
        # Generous: a timer-driven ship would take an hour.
        assert time.monotonic() - t0 < 2.0
    conn.close()
    assert rep.stop() == 0, rep.text()


def test_commits_during_a_sync_are_not_missed(litestream_bin, run, tmp_path):
    """The directory watcher is paused while a sync runs; what was written
    meanwhile must still be found when it ends (db_loop.c, "paused
    watcher"). With monitor-interval an hour, rounds of commits spaced
    so that many land while a sync runs, or just as it ends, each reach
    the replica in full without a further write."""
    import random
    db, replica, rep = events_only_replicator(litestream_bin, tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    rnd = random.Random(11)
    n = 0
    for rnd_no in range(40):
        # The last commit of a round comes 4.5-6.5 ms after the one before:
        # about when the sync after that one's (which finds nothing) runs.
        k = rnd.randint(1, 5)
        for i in range(k + 1):
            n += 1
            conn.execute("INSERT INTO t (writer, n, payload) VALUES (3, ?, x'02')", (n,))
            if i < k:
                time.sleep(rnd.random() * 0.004 if i < k - 1 else 0.0045 + rnd.random() * 0.002)
        out = tmp_path / f"r{rnd_no}.db"

        def shipped():
            if out.exists():
                out.unlink()
            r = run("restore", "-o", out, f"file://{replica}")
            if r.returncode != 0:
                return False
            c = sqlite3.connect(out)
            try:
                return c.execute("SELECT max(n) FROM t WHERE writer = 3").fetchone()[0] == n
            finally:
                c.close()
        wait_for(shipped, timeout=5, interval=0.05, what=f"round {rnd_no}: commit {n} on the replica")
    conn.close()
    assert rep.stop() == 0, rep.text()


STEADY_WRITER = r"""
import sqlite3, sys, time, os
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
end = time.monotonic() + float(sys.argv[2])
blob = os.urandom(4000)
while time.monotonic() < end:
    conn.execute("BEGIN")
    for _ in range(256):                       # about 1 MB in one transaction
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (1, 0, ?)", (blob,))
    conn.execute("COMMIT")
    for i in range(20):                        # then single-row commits
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (2, ?, x'01')", (i,))
        time.sleep(0.005)
"""


@pytest.mark.timing
def test_wal_restarts_under_steady_writer(litestream_bin, run, tmp_path):
    """After a complete PASSIVE checkpoint the application's next write
    restarts the WAL: several WAL indexes, and the -wal file stays within
    max-checkpoint-page-count pages plus a transaction or two (how close it
    stays to min-checkpoint-page-count is a figure of bench/replicate.py)."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    min_pages, max_pages = 300, 2000
    conf = write_config(tmp_path, db, replica, min_checkpoint_page_count=min_pages,
                        max_checkpoint_page_count=max_pages)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_for(lambda: has_snapshot(replica), what="first snapshot")
    peak = WalPeak(db)
    peak.start()
    subprocess.run([sys.executable, "-c", STEADY_WRITER, str(db), "6"], check=True, timeout=120)
    wal_peak = peak.stop()
    assert rep.stop() == 0, rep.text()
    indexes = {(g, i) for g, i, _ in replica_segments(replica)}
    assert len(generations(replica)) == 1, rep.text()
    assert len(indexes) >= 4, f"only {len(indexes)} WAL indexes"
    txn = 256 * FRAME + 64 * FRAME  # the big transaction and its index pages
    limit = max_pages * FRAME + 2 * txn
    assert wal_peak <= limit, f"-wal peaked at {wal_peak} bytes, limit {limit}"
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


# A writer with busy_timeout 0 that counts SQLITE_BUSY: a statement outside
# a transaction is tried again, one inside rolls the transaction back.
BUSY_COUNTING = r"""
import os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
busy = 0
def do(sql, *args):
    global busy
    while True:
        try:
            return conn.execute(sql, *args)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            busy += 1
            if conn.in_transaction:
                conn.execute("ROLLBACK")
                raise
            time.sleep(0.001)
"""

NO_TIMEOUT_WRITER = BUSY_COUNTING + r"""
for i in range(2000):
    try:
        if i % 500 == 499:
            do("DELETE FROM t WHERE n % 3 = 0")
            do("VACUUM")
        elif i % 200 == 0:
            do("BEGIN")
            for _ in range(300):
                do("INSERT INTO t (writer, n, payload) VALUES (3, ?, ?)", (i, os.urandom(3000)))
            do("COMMIT")
        else:
            do("INSERT INTO t (writer, n, payload) VALUES (3, ?, x'02')", (i,))
    except sqlite3.OperationalError:
        pass
    time.sleep(0.003)    # an application, not a loop that never lets go
print(busy)
"""


@pytest.mark.timing
def test_no_busy_for_a_writer_without_timeout(litestream_bin, run, tmp_path):
    """The sidecar never writes to the database nor takes its write lock
    in normal operation: a writer with busy_timeout 0 never gets BUSY."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_for(lambda: has_snapshot(replica), what="first snapshot")
    out = subprocess.run([sys.executable, "-c", NO_TIMEOUT_WRITER, str(db)], check=True,
                         timeout=300, capture_output=True, text=True).stdout
    assert rep.stop() == 0, rep.text()
    assert int(out.strip()) == 0, f"the writer got SQLITE_BUSY {out.strip()} times"
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


PAUSING_BURSTS_WRITER = BUSY_COUNTING + r"""
blob, end = os.urandom(64 * 1024), time.time() + float(sys.argv[2])
while time.time() < end:
    do("BEGIN IMMEDIATE")
    for _ in range(40):    # 2.5 MiB
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (5, 0, ?)", (blob,))
    do("COMMIT")
    for i in range(20):
        do("INSERT INTO t (writer, n, payload) VALUES (5, ?, x'05')", (i,))
    time.sleep(0.05)
print(busy)
"""


@pytest.mark.timing
def test_bursts_with_pauses_restart_without_the_write_lock(litestream_bin, run, tmp_path):
    """Large transactions between single-row commits, a 50 ms pause after
    each group, no busy timeout: the rounds that run when the writer
    pauses restart the WAL (several indexes, the -wal file within
    2 x min-checkpoint-page-count pages plus a transaction), never at
    max-checkpoint-page-count under the write lock: no SQLITE_BUSY."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_for(lambda: has_snapshot(replica), what="first snapshot")
    peak = WalPeak(db)
    peak.start()
    out = subprocess.run([sys.executable, "-c", PAUSING_BURSTS_WRITER, str(db), "5"], check=True,
                         timeout=120, capture_output=True, text=True).stdout
    wal_peak = peak.stop()
    assert rep.stop() == 0, rep.text()
    assert int(out.strip()) == 0, f"the writer got SQLITE_BUSY {out.strip()} times"
    indexes = {(g, i) for g, i, _ in replica_segments(replica)}
    assert len(indexes) >= 5, f"only {len(indexes)} WAL indexes"
    limit = 2 * 1000 * FRAME + 48 * 64 * 1024
    assert wal_peak <= limit, f"-wal peaked at {wal_peak} bytes, limit {limit}"
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def wal_descriptors(pid, db):
    """How many of the process's descriptors are open on the -wal file."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == f"{db}-wal"
        except OSError:
            pass
    return n


def test_idle_database_keeps_one_connection(litestream_bin, run, tmp_path):
    """An idle database holds one SQLite connection (one -wal descriptor):
    the second, which takes over the read transaction and checkpoints, opens
    when the database is written and closes after ten monitor-intervals
    without a commit; opened again, its checkpoints still restart the WAL."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conf = write_config(tmp_path, db, replica, min_checkpoint_page_count=50, monitor_interval="200ms")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_for(lambda: has_snapshot(replica), what="first snapshot")
    pid = rep.proc.pid
    assert wal_descriptors(pid, db) == 1, "a database never written needs one connection"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")

    def write_and_restart():
        indexes = len({(g, i) for g, i, _ in replica_segments(replica)})
        for i in range(60):
            conn.execute("INSERT INTO t (writer, n, payload) VALUES (6, ?, ?)", (i, os.urandom(3000)))
        wait_for(lambda: wal_descriptors(pid, db) == 2, what="the second connection")

        def restarted():
            # The write after the checkpoint restarts the WAL (a new index).
            conn.execute("INSERT INTO t (writer, n, payload) VALUES (6, -1, x'06')")
            return len({(g, i) for g, i, _ in replica_segments(replica)}) > indexes
        wait_for(restarted, interval=0.2, what="a WAL restart after the checkpoint")

    write_and_restart()
    wait_for(lambda: wal_descriptors(pid, db) == 1, timeout=30, what="the second connection closed")
    write_and_restart()
    conn.close()
    assert rep.stop() == 0, rep.text()
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def cut_shadow_tail(db, frames):
    meta = os.path.join(os.path.dirname(db), "." + os.path.basename(db) + "-litestream")
    gen = open(os.path.join(meta, "generation")).read().strip()
    wdir = os.path.join(meta, "generations", gen, "wal")
    path = os.path.join(wdir, max(os.listdir(wdir)))
    size = os.path.getsize(path)
    assert size > 32 + frames * FRAME
    os.truncate(path, size - frames * FRAME)


def crash_with_lost_shadow_tail(litestream_bin, tmp_path, then):
    """Replicates, kills the sidecar with SIGKILL, cuts the shadow WAL's
    tail as a host crash would (pages never written), runs then(conn), and
    replicates again. Returns the replica path."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conf = write_config(tmp_path, db, replica, min_checkpoint_page_count=100000,
                        max_checkpoint_page_count=200000, checkpoint_interval="1h")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    for i in range(200):
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (4, ?, ?)", (i, os.urandom(500)))
    wait_for(lambda: replica_segments(replica), what="segments")
    time.sleep(1.0)
    assert rep.kill() == -9
    cut_shadow_tail(db, 5)
    then(conn)
    # The application stays open: its last connection closing would
    # checkpoint and delete the WAL, which is another test.
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    time.sleep(1.5)
    assert rep.stop() == 0, rep.text()
    conn.close()
    return replica, rep.text()


def test_lost_shadow_tail_copied_again(litestream_bin, run, tmp_path):
    """The real WAL still holds the lost frames: they are copied again, in
    the same generation."""
    def more(conn):
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (5, 0, x'05')")
    replica, log = crash_with_lost_shadow_tail(litestream_bin, tmp_path, more)
    assert len(generations(replica)) == 1, log
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(tmp_path / "app.db", tmp_path / "restored.db")


def test_lost_shadow_tail_after_checkpoint_starts_new_generation(litestream_bin, run, tmp_path):
    """The application checkpointed and restarted the WAL while the sidecar
    was down: the lost frames are nowhere to copy from, so continuity is
    lost, a new generation starts, and the restore still equals the source."""
    def checkpoint_and_write(conn):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for i in range(50):
            conn.execute("INSERT INTO t (writer, n, payload) VALUES (6, ?, x'06')", (i,))
    replica, log = crash_with_lost_shadow_tail(litestream_bin, tmp_path, checkpoint_and_write)
    assert len(generations(replica)) == 2, log
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(tmp_path / "app.db", tmp_path / "restored.db")
