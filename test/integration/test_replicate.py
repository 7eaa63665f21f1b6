"""`litestream replicate` to a file replica, proven by restoring: real
SQLite databases written by real processes, the real binary, SIGTERM and
kill -9."""
import os
import random
import signal
import sqlite3
import subprocess
import time

import pytest

from lsutil import Replicator, assert_same, restore, start_writers, wait_for, wait_writers


def make_db(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER, payload BLOB)")
    conn.close()


def segments(replica):
    out = []
    for root, _, files in os.walk(replica):
        out += [os.path.join(root, f) for f in files]
    return sorted(out)


def test_end_to_end_two_writers(litestream_bin, run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    writers = start_writers(db, [["--seed", 1, "--count", 1500, "--big-every", 700],
                                 ["--seed", 2, "--count", 1500]])
    wait_writers(writers)
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text()
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_plain_path_replica_and_sigint(litestream_bin, run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, replica], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 3, "--count", 200]]))
    assert rep.stop(signal.SIGINT) == 0
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_application_checkpoints_and_vacuum(litestream_bin, run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 4, "--count", 800, "--checkpoint-every", 37,
                                     "--vacuum-every", 301, "--sleep", 0.001],
                                    ["--seed", 5, "--count", 800, "--sleep", 0.001]]))
    assert rep.stop() == 0, rep.text()
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_kill_9_and_restart(litestream_bin, run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rng = random.Random(7)
    writers = start_writers(db, [["--seed", 6, "--count", 3000, "--big-every", 1000, "--sleep", 0.0005]])
    for i in range(4):
        rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
        time.sleep(rng.uniform(0.2, 1.2))
        rep.kill()
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_writers(writers)
    assert rep.stop() == 0, rep.text()
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_restart_resumes_without_reuploading(litestream_bin, run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 8, "--count", 100]]))
    assert rep.stop() == 0
    before = {p: os.stat(p).st_mtime_ns for p in segments(replica)}
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log2")
    wait_writers(start_writers(db, [["--seed", 9, "--count", 100]]))
    assert rep.stop() == 0
    after = {p: os.stat(p).st_mtime_ns for p in segments(replica)}
    # Nothing shipped before was written again, and the same generation went on.
    for p, mtime in before.items():
        assert after.get(p) == mtime, f"{p} rewritten or removed"
    assert len(after) > len(before)
    assert "new generation" not in rep.text()
    assert "resuming at" in rep.text()
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_waits_for_database_to_exist(litestream_bin, run, tmp_path):
    db, replica = tmp_path / "later.db", tmp_path / "replica"
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    time.sleep(1.5)
    assert rep.proc.poll() is None, rep.text()
    make_db(db)
    wait_writers(start_writers(db, [["--seed", 10, "--count", 50]]))
    wait_for(lambda: any("snapshot" in p for p in segments(replica)), what="snapshot")
    assert rep.stop() == 0
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_config_many_databases_and_replicas(litestream_bin, run, tmp_path):
    dbs = [tmp_path / "a.db", tmp_path / "b.db"]
    for d in dbs:
        make_db(d)
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"""
[litestream]
log-level = debug

[db a]
path = {dbs[0]}

[db b]
path = {dbs[1]}
monitor-interval = 200ms

[replica a1]
db = a
url = file://${{REPL_ROOT}}/a1

[replica a2]
db = a
type = file
path = ${{REPL_ROOT}}/a2
sync-interval = 300ms

[replica b1]
db = b
path = ${{REPL_ROOT}}/b1
type = file
""")
    env = dict(os.environ, REPL_ROOT=str(tmp_path / "r"))
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=env)
    wait_writers(start_writers(dbs[0], [["--seed", 11, "--count", 300]]) +
                 start_writers(dbs[1], [["--seed", 12, "--count", 300]]))
    assert rep.stop() == 0, rep.text()
    for d, name in [(dbs[0], "a1"), (dbs[0], "a2"), (dbs[1], "b1")]:
        out = tmp_path / f"restored-{name}.db"
        restore(run, f"file://{tmp_path}/r/{name}", out)
        assert_same(d, out)


def test_bad_config_names_file_line_section_key(run, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[db a]\npath = /tmp/a.db\nmonitor-interval = soon\n")
    r = run("replicate", "-config", conf)
    assert r.returncode != 0
    assert f"{conf}:3" in r.stderr and "[db a]" in r.stderr and "monitor-interval" in r.stderr


def test_missing_config_file(run, tmp_path):
    r = run("replicate", "-config", tmp_path / "nope.conf")
    assert r.returncode == 1
    assert "nope.conf" in r.stderr


def test_url_mode_needs_a_replica(run, tmp_path):
    r = run("replicate", tmp_path / "app.db")
    assert r.returncode == 2
