"""`litestream restore -f`: a read replica that follows a replica while
other processes read it.

Every test runs the real thing: a writer process on a WAL-mode primary,
`litestream replicate` shipping it, `litestream restore -f` following the
replica into a local copy, and a reader process (follow_tools.py) querying
that copy in a loop. The writer keeps a counter and a checksum of every row
in the same transaction as the row, so a reader that saw a torn or
reordered state would find them disagreeing; the counter must never go
back. At the end the copy equals the primary.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import ctlutil
from ctlutil import sockdir  # noqa: F401 (a fixture)
from lsutil import RUNNING, Replicator, assert_same, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "follow_tools.py")
sys.path.insert(0, HERE)
import follow_tools  # noqa: E402


class Follower(Replicator):
    """A running `litestream restore -f -o OUT ... URL`."""

    def __init__(self, binary, out, url, log_path, *extra, env=None):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "restore", "-f", "-follow-interval", "100ms", "-o", str(out),
             *map(str, extra), url], stdout=self.log, stderr=self.log, env=env)
        RUNNING.append(self)


class Reader:
    def __init__(self, db, tmp_path, name="reader", crashes=False):
        self.result = tmp_path / f"{name}.json"
        self.stop_file = tmp_path / f"{name}.stop"
        self.proc = subprocess.Popen([sys.executable, TOOLS, "read", str(db), str(self.result),
                                      str(self.stop_file), *(["--crashes"] if crashes else [])])

    def finish(self):
        self.stop_file.write_text("")
        self.proc.wait(timeout=60)
        with open(self.result) as f:
            out = json.load(f)
        assert out["violations"] == [], out["violations"][:5]
        assert out["errors"] == [], out["errors"][:5]
        assert out["reads"] > 0
        return out


def write(db, count, *extra):
    r = subprocess.run([sys.executable, TOOLS, "write", str(db), str(count), *map(str, extra)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


def start_writer(db, count, *extra):
    return subprocess.Popen([sys.executable, TOOLS, "write", str(db), str(count), *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_counter(path, want, timeout=30):
    def ok():
        try:
            return follow_tools.counter(path) == want
        except Exception:
            return False
    wait_for(ok, timeout=timeout, what=f"{path} to reach counter {want}")


def setup_primary(tmp_path, pad_rows=0):
    db = tmp_path / "primary.db"
    follow_tools.setup(str(db), pad_rows)
    return db


def file_url(p):
    return f"file://{p}"


def test_follow_reader_sees_prefixes_and_status(litestream_bin, tmp_path, sockdir):
    db, rep_dir, out = setup_primary(tmp_path, pad_rows=400), tmp_path / "replica", tmp_path / "copy.db"
    sock = sockdir + "/follow.sock"
    rep = Replicator(litestream_bin, [db, file_url(rep_dir)], tmp_path / "replicate.log")
    write(db, 5)
    wait_for(lambda: os.path.isdir(rep_dir / "generations"), what="the first snapshot")
    # Slow page writes: a reader let in during a change would see it half done.
    env = dict(os.environ, LITESTREAM_TEST_FOLLOW_PAGE_DELAY_US="300")
    fol = Follower(litestream_bin, out, file_url(rep_dir), tmp_path / "follow.log", "-socket", sock,
                   env=env)
    wait_counter(out, 5)
    size_before = os.path.getsize(out)
    reader = Reader(out, tmp_path)
    # A VACUUM halfway through shrinks the primary: the copy is cut too.
    w = start_writer(db, 400, "--blob", "500", "--shrink-at", "200", "--sleep", "0.002")
    stdout, stderr = w.communicate(timeout=120)
    assert w.returncode == 0, stderr
    last = int(stdout)
    wait_counter(out, last)
    res = reader.finish()
    assert res["last"] == last and res["first"] < last
    code, st, _ = ctlutil.call(sock, "GET", "/v1/status")
    assert code == 200 and st["state"] == "following", st
    assert st["position"]["generation"] and st["last_error"] is None and st["applies"] > 0
    assert st["lag_seconds"] == 0
    code, text, _ = ctlutil.call(sock, "GET", "/metrics")
    assert code == 200 and "litestream_follow_lag_seconds{db=" in text
    assert "litestream_follow_segments_total" in text and "process_resident_memory_bytes" in text
    assert fol.stop() == 0  # SIGTERM
    assert not os.path.exists(sock)
    assert rep.stop() == 0
    assert os.path.getsize(out) < size_before / 2, "the copy was not cut after the VACUUM"
    assert_same(db, out)


def test_follow_switches_generation(litestream_bin, tmp_path):
    db, rep_dir, out = setup_primary(tmp_path), tmp_path / "replica", tmp_path / "copy.db"
    rep = Replicator(litestream_bin, [db, file_url(rep_dir)], tmp_path / "replicate.log")
    write(db, 20)
    wait_for(lambda: os.path.isdir(rep_dir / "generations"), what="the first snapshot")
    fol = Follower(litestream_bin, out, file_url(rep_dir), tmp_path / "follow.log")
    wait_counter(out, 20)
    gen1 = os.listdir(rep_dir / "generations")
    reader = Reader(out, tmp_path)
    # The primary loses its shadow WAL while litestream is down: a new generation.
    assert rep.stop() == 0
    shutil.rmtree(tmp_path / ".primary.db-litestream")
    write(db, 30)
    rep = Replicator(litestream_bin, [db, file_url(rep_dir)], tmp_path / "replicate2.log")
    wait_for(lambda: len(os.listdir(rep_dir / "generations")) == 2, what="a second generation")
    last = write(db, 50, "--sleep", "0.005")
    wait_counter(out, last)
    reader.finish()
    assert "moved to generation" in fol.text()
    assert fol.stop() == 0 and rep.stop() == 0
    assert_same(db, out)
    assert len(gen1) == 1


def test_follow_killed_mid_apply_resumes(litestream_bin, tmp_path):
    db, rep_dir, out = setup_primary(tmp_path), tmp_path / "replica", tmp_path / "copy.db"
    url = file_url(rep_dir)
    rep = Replicator(litestream_bin, [db, url], tmp_path / "replicate.log")
    write(db, 10)
    wait_for(lambda: os.path.isdir(rep_dir / "generations"), what="the first snapshot")
    # Killed (SIGKILL, from inside) during its third change, pages written, journal not deleted.
    env = dict(os.environ, LITESTREAM_TEST_FOLLOW_CRASH="3")
    fol = Follower(litestream_bin, out, url, tmp_path / "follow.log", env=env)
    wait_for(lambda: os.path.exists(out), what="the first restore")
    reader = Reader(out, tmp_path, crashes=True)
    w = start_writer(db, 100, "--blob", "3000", "--sleep", "0.01")
    assert fol.proc.wait(timeout=60) == -signal.SIGKILL
    assert os.path.exists(str(out) + "-journal"), "no journal left by the crash"
    # Then killed again from outside, at random moments.
    for delay in (0.15, 0.05, 0.3):
        fol = Follower(litestream_bin, out, url, tmp_path / "follow.log")
        time.sleep(delay)
        fol.kill()
    fol = Follower(litestream_bin, out, url, tmp_path / "follow.log")
    _, err = w.communicate(timeout=120)
    assert w.returncode == 0, err
    wait_counter(out, 110)
    reader.finish()
    assert "resuming generation" in fol.text()
    assert fol.stop() == 0 and rep.stop() == 0
    assert not os.path.exists(str(out) + "-journal")
    assert_same(db, out)


def test_follow_refuses_foreign_copy(litestream_bin, run, tmp_path):
    db, rep_dir, out = setup_primary(tmp_path), tmp_path / "replica", tmp_path / "copy.db"
    url = file_url(rep_dir)
    rep = Replicator(litestream_bin, [db, url], tmp_path / "replicate.log")
    write(db, 3)
    wait_for(lambda: os.path.isdir(rep_dir / "generations"), what="the first snapshot")
    follow_tools.setup(str(out))
    r = run("restore", "-f", "-o", out, url, timeout=30)
    assert r.returncode == 1 and "has no position file" in r.stderr and "-force" in r.stderr
    fol = Follower(litestream_bin, out, url, tmp_path / "follow.log", "-force")
    wait_counter(out, 3)
    assert fol.stop() == 0
    # Someone else wrote to the copy: its change counter moved on.
    conn = __import__("sqlite3").connect(out, isolation_level=None)
    conn.execute("UPDATE meta SET v = 99 WHERE k = 'checksum'")
    conn.close()
    r = run("restore", "-f", "-o", out, url, timeout=30)
    assert r.returncode == 1 and "changed since the follower left it" in r.stderr, r.stderr
    assert rep.stop() == 0


@pytest.mark.parametrize("damage", ["corrupt", "remove"])
def test_follow_stops_on_bad_segment(litestream_bin, tmp_path, damage):
    db, rep_dir, out = setup_primary(tmp_path), tmp_path / "replica", tmp_path / "copy.db"
    url = file_url(rep_dir)
    rep = Replicator(litestream_bin, [db, url], tmp_path / "replicate.log")
    write(db, 10)
    wait_for(lambda: os.path.isdir(rep_dir / "generations"), what="the first snapshot")
    fol = Follower(litestream_bin, out, url, tmp_path / "follow.log")
    wait_counter(out, 10)
    assert fol.stop() == 0
    # Three more transactions, each its own segment; the middle one is damaged.
    segs_before = set(segment_files(rep_dir))
    for _ in range(3):
        write(db, 1)
        n = len(segs_before)
        wait_for(lambda: len(segment_files(rep_dir)) > n, what="a new segment")
        segs_before = set(segment_files(rep_dir))
    wait_for(lambda: len(segment_files(rep_dir)) >= 3, what="segments")
    assert rep.stop() == 0
    victim = sorted(segment_files(rep_dir))[-2]
    if damage == "corrupt":
        with open(victim, "r+b") as f:
            f.seek(os.path.getsize(victim) // 2)
            f.write(b"\xff" * 16)
    else:
        os.unlink(victim)
    fol = Follower(litestream_bin, out, url, tmp_path / "follow2.log")
    assert fol.proc.wait(timeout=30) == 1
    text = fol.text()
    if damage == "corrupt":
        assert os.path.basename(victim) in text, text
    else:
        assert "expected a segment at offset" in text, text
    # The copy is readable at the last transaction before the damage.
    assert follow_tools.counter(out) == 11
    check = __import__("sqlite3").connect(f"file:{out}?mode=ro", uri=True).execute(
        "PRAGMA integrity_check").fetchall()
    assert check == [("ok",)]


def segment_files(rep_dir):
    out = []
    for root, _, files in os.walk(rep_dir):
        if root.endswith("/wal"):
            out += [os.path.join(root, f) for f in files if not f.endswith(".tmp")]
    return out


# ---- S3 ---------------------------------------------------------------------------


@pytest.fixture
def follow_proxy(s3_server, tmp_path):
    from test_s3 import MITMDUMP, Proxy
    if MITMDUMP is None:
        pytest.skip("mitmdump is not installed (Debian package mitmproxy)")
    (tmp_path / "proxy").mkdir()
    p = Proxy(s3_server, str(tmp_path / "proxy"))
    yield p
    p.stop()


@pytest.mark.skipif(os.environ.get("LITESTREAM_SANITIZERS") == "1",
                    reason="LITESTREAM_SANITIZERS=1: the S3 follow path runs once, in the plain build")
def test_follow_s3_through_faults(litestream_bin, tmp_path, s3_server, follow_proxy):
    from test_s3 import creds_env, new_prefix
    db, out, prefix = setup_primary(tmp_path), tmp_path / "copy.db", new_prefix()
    rep = Replicator(litestream_bin, [db, s3_server.replica_url(prefix)], tmp_path / "replicate.log",
                     env=creds_env(s3_server))
    write(db, 5)
    wait_for(lambda: ".snapshot.lz4" in s3_server.aws(
        "s3", "ls", "--recursive", f"s3://{s3_server.bucket}/{prefix}/", check=False).stdout,
        interval=0.3, what="the first snapshot")
    # The follower reads through the proxy: SlowDown on segment downloads,
    # listings cut off; each is retried (by the S3 client or at the next poll).
    follow_proxy.set([
        {"match": r"^GET .*\.wal\.lz4", "action": "status", "status": 503, "code": "SlowDown",
         "skip": 1, "count": 3},
        {"match": r"^GET [^ ]*\?.*list-type", "action": "reset", "skip": 4, "count": 2},
    ])
    url = (f"s3://{s3_server.bucket}/{prefix}?endpoint={follow_proxy.endpoint}"
           f"&region={s3_server.region}&force-path-style=true")
    fol = Follower(litestream_bin, out, url, tmp_path / "follow.log", env=creds_env(s3_server))
    wait_counter(out, 5)
    reader = Reader(out, tmp_path)
    last = write(db, 60, "--sleep", "0.01")
    wait_counter(out, last, timeout=60)
    reader.finish()
    acts = [a["action"] for a in follow_proxy.actions()]
    assert acts.count("status") == 3 and acts.count("reset") == 2, acts
    assert fol.stop() == 0, fol.text()
    assert rep.stop() == 0
    assert_same(db, out)


def test_follow_from_config(litestream_bin, run, tmp_path):
    db, rep_dir, out = setup_primary(tmp_path), tmp_path / "replica", tmp_path / "copy.db"
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"[db app]\npath = {db}\n\n[replica file]\ndb = app\nurl = {file_url(rep_dir)}\n")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "replicate.log")
    write(db, 7)
    wait_for(lambda: os.path.isdir(rep_dir / "generations"), what="the first snapshot")
    r = run("restore", "-f", "-config", conf, "-o", out, "-timestamp", "2026-01-01T00:00:00Z", db)
    assert r.returncode == 2 and "takes no -generation, -index or -timestamp" in r.stderr
    fol = Follower(litestream_bin, out, str(db), tmp_path / "follow.log", "-config", conf)
    wait_counter(out, 7)
    last = write(db, 20)
    wait_counter(out, last)
    assert fol.stop() == 0 and rep.stop() == 0
    assert_same(db, out)


def test_follow_encrypted_replica(litestream_bin, run, tmp_path):
    """An age-encrypted replica: the primary holds only the recipient, the
    follower's configuration the identity; a follower without it stops
    before writing anything, naming the encryption."""
    from agekeys import Key, need_tools
    need_tools()
    (tmp_path / "keys").mkdir()
    key = Key(tmp_path / "keys", "one")
    db, rep_dir, out = setup_primary(tmp_path), tmp_path / "replica", tmp_path / "copy.db"

    def conf(name, line):
        p = tmp_path / name
        p.write_text(f"[db app]\npath = {db}\n\n[replica file]\ndb = app\n"
                     f"url = {file_url(rep_dir)}\n{line}\n")
        return p
    primary = conf("primary.conf", f"age-recipients = {key.recipient}")
    reading = conf("follower.conf", f"age-identities = {key.path}")
    rep = Replicator(litestream_bin, ["-config", primary], tmp_path / "replicate.log")
    write(db, 5)
    wait_for(lambda: os.path.isdir(rep_dir / "generations"), what="the first snapshot")
    r = run("restore", "-f", "-o", tmp_path / "nokey.db", file_url(rep_dir), timeout=60)
    assert r.returncode == 1 and "encrypted with age" in r.stderr, r.stderr
    assert not (tmp_path / "nokey.db").exists()
    fol = Follower(litestream_bin, out, str(db), tmp_path / "follow.log", "-config", reading)
    wait_counter(out, 5)
    reader = Reader(out, tmp_path)
    last = write(db, 40)
    wait_counter(out, last)
    reader.finish()
    assert fol.stop() == 0 and rep.stop() == 0
    assert_same(db, out)


def test_follow_catches_up_after_retention(litestream_bin, tmp_path, sockdir):
    db, rep_dir, out = setup_primary(tmp_path), tmp_path / "replica", tmp_path / "copy.db"
    sock = sockdir + "/ctl.sock"
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"[litestream]\nsocket = {sock}\n\n[db app]\npath = {db}\n\n"
                    f"[replica file]\ndb = app\nurl = {file_url(rep_dir)}\n")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "replicate.log")
    write(db, 5)
    wait_for(lambda: os.path.exists(sock) and os.path.isdir(rep_dir / "generations"),
             what="the first snapshot")
    fol = Follower(litestream_bin, out, file_url(rep_dir), tmp_path / "follow.log")
    wait_counter(out, 5)
    assert fol.stop() == 0
    # While the follower is down, two new indexes and a snapshot; what
    # retention would delete (the indexes the copy needs next) goes.
    for _ in range(2):
        write(db, 5)
        code, body, _ = ctlutil.call(sock, "POST", "/v1/dbs/app/checkpoint?mode=TRUNCATE")
        assert code == 200, body
    last = write(db, 5)
    code, body, _ = ctlutil.call(sock, "POST", "/v1/dbs/app/snapshot?wait=1")
    assert code == 200, body
    code, body, _ = ctlutil.call(sock, "POST", "/v1/dbs/app/sync?wait=1")
    assert code == 200, body
    gen = os.listdir(rep_dir / "generations")[0]
    snaps = sorted(os.listdir(rep_dir / "generations" / gen / "snapshots"))
    keep = snaps[-1].split(".")[0]
    assert keep >= "00000002", snaps
    for name in os.listdir(rep_dir / "generations" / gen / "wal"):
        if name.split("_")[0].split(".")[0] < keep:
            os.unlink(rep_dir / "generations" / gen / "wal" / name)
    for name in snaps[:-1]:
        os.unlink(rep_dir / "generations" / gen / "snapshots" / name)
    fol = Follower(litestream_bin, out, file_url(rep_dir), tmp_path / "follow2.log")
    wait_counter(out, last)
    assert "restoring anew" in fol.text(), fol.text()
    assert fol.stop() == 0 and rep.stop() == 0
    assert_same(db, out)
