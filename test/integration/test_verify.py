"""litestream verify: every generation of a replica checked end to end
without writing the database. A whole replica exits 0; a corrupt or
missing segment, or a broken older snapshot, exits 1 naming the object; the
database, its directory and the scratch directory are left as they were."""
import json
import os
import shutil

import replica_tools as rt
from ctlutil import call, sockdir  # noqa: F401 (a fixture)
from lsutil import Replicator, start_writers, wait_for, wait_writers
from test_replicate import make_db
from test_s3 import creds_env, new_prefix, write_conf
from test_s3_scenarios import objects, upload


def two_snapshot_replica(litestream_bin, tmp_path, sockdir):
    """A file replica whose one generation has two snapshots (at two WAL
    indexes) and segments after each: a TRUNCATE checkpoint and a snapshot
    asked for on the control socket, between writes."""
    db, replica, sock = tmp_path / "app.db", tmp_path / "replica", f"{sockdir}/ls.sock"
    make_db(db)
    conf = tmp_path / "ls.conf"
    conf.write_text(f"""
[litestream]
socket = {sock}

[db app]
path = {db}

[replica file]
db = app
url = file://{replica}
""")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_for(lambda: os.path.exists(sock) and rt.generations(replica), what="the first snapshot")
    wait_writers(start_writers(db, [["--seed", 1, "--count", 60]]))
    st, body, _ = call(sock, "POST", "/v1/dbs/app/checkpoint?mode=TRUNCATE&timeout=10s")
    assert st == 200, body
    wait_writers(start_writers(db, [["--seed", 2, "--count", 60]]))
    st, body, _ = call(sock, "POST", "/v1/dbs/app/snapshot")
    assert st in (200, 202), body
    (gen,) = rt.generations(replica)
    wait_for(lambda: len(rt.snapshots(replica, gen)) >= 2, what="the second snapshot")
    wait_writers(start_writers(db, [["--seed", 3, "--count", 40]]))
    assert rep.stop() == 0, rep.text()
    assert [i for i, _ in rt.snapshots(replica, gen)][-1] > 0
    return db, replica, gen


def verify(run, tmp_path, *args):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    r = run("verify", "-scratch", scratch, *args)
    assert os.listdir(scratch) == [], "verify left files in its scratch directory"
    return r


def test_whole_replica_verifies(litestream_bin, run, tmp_path, sockdir):
    db, replica, gen = two_snapshot_replica(litestream_bin, tmp_path, sockdir)
    before = sorted(os.listdir(tmp_path))
    r = verify(run, tmp_path, f"file://{replica}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["name", "generation", "status", "snapshots", "segments", "start",
                                "end", "restorable"]
    (row,) = lines[1:]
    last = rt.segments(replica, gen)[-1][2]
    assert row.split()[:3] == ["file", gen, "ok"] and row.split()[-1] == os.path.basename(last), row
    r = verify(run, tmp_path, "-json", f"file://{replica}")
    assert r.returncode == 0, r.stderr
    (obj,) = json.loads(r.stdout)
    assert obj["status"] == "ok" and obj["problems"] == [] and obj["generation"] == gen
    assert obj["snapshots"] == len(rt.snapshots(replica, gen))
    assert obj["restorable_to"] == os.path.basename(last)
    # Nothing new beside the database (the scratch directory is the test's).
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["scratch"])


def test_corrupt_segment_fails_naming_it(litestream_bin, run, tmp_path, sockdir):
    db, replica, gen = two_snapshot_replica(litestream_bin, tmp_path, sockdir)
    _, _, path, _ = rt.segments(replica, gen)[-2]
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    r = verify(run, tmp_path, "-json", f"file://{replica}")
    assert r.returncode == 1, r.stdout + r.stderr
    name = os.path.basename(path)
    assert name in r.stderr, r.stderr
    (obj,) = json.loads(r.stdout)
    assert obj["status"] == "failed" and any(name in p for p in obj["problems"]), obj


def test_missing_segment_fails(litestream_bin, run, tmp_path, sockdir):
    db, replica, gen = two_snapshot_replica(litestream_bin, tmp_path, sockdir)
    segs = rt.segments(replica, gen)
    os.unlink(segs[len(segs) // 2][2])
    r = verify(run, tmp_path, f"file://{replica}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stdout and f"file {gen}:" in r.stderr, r.stdout + r.stderr


def test_truncated_segment_fails_naming_it(litestream_bin, run, tmp_path, sockdir):
    db, replica, gen = two_snapshot_replica(litestream_bin, tmp_path, sockdir)
    _, _, path, _ = rt.segments(replica, gen)[1]
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])
    r = verify(run, tmp_path, f"file://{replica}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert os.path.basename(path) in r.stderr, r.stderr


def test_recompressed_damage_fails_on_the_wal_checksums(litestream_bin, run, tmp_path, sockdir):
    """A segment whose WAL bytes changed and were compressed again: every
    LZ4 checksum holds, the WAL checksum chain does not."""
    db, replica, gen = two_snapshot_replica(litestream_bin, tmp_path, sockdir)
    _, _, path, compressed = rt.segments(replica, gen)[1]
    assert compressed
    wal = bytearray(rt.lz4_decompress(path))
    wal[len(wal) // 2] ^= 0x01
    os.unlink(path)
    rt.lz4_compress(bytes(wal), path)
    r = verify(run, tmp_path, f"file://{replica}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert os.path.basename(path) in r.stderr and "checksum" in r.stderr, r.stderr


def test_object_of_another_generation_fails(litestream_bin, run, tmp_path, sockdir):
    """A segment replaced by the one at the same place of another
    database's replica (another generation, other salts): found."""
    other = tmp_path / "other"
    other.mkdir()
    _, other_replica, other_gen = two_snapshot_replica(litestream_bin, other, sockdir)
    db, replica, gen = two_snapshot_replica(litestream_bin, tmp_path, sockdir)
    ours = {(i, o): p for i, o, p, _ in rt.segments(replica, gen)}
    theirs = {(i, o): p for i, o, p, _ in rt.segments(other_replica, other_gen)}
    # A place inside a chain: a foreign segment that starts an index and is
    # its last is self-consistent, and nothing after it can tell.
    common = sorted(set(ours) & set(theirs))
    inside = [(i, o) for i, o in common if o > 0 or any(j == i and p > o for j, p in ours)]
    assert inside, f"no segment place in common: ours {sorted(ours)}, theirs {sorted(theirs)}"
    place = inside[0] if inside[0] != (0, 0) or len(inside) == 1 else inside[1]
    shutil.copyfile(theirs[place], ours[place])
    r = verify(run, tmp_path, f"file://{replica}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert os.path.basename(ours[place]) in r.stderr, r.stderr


def test_missing_index_fails(litestream_bin, run, tmp_path, sockdir):
    """One snapshot and three WAL indexes (TRUNCATE checkpoints between
    writes); every segment of the middle index gone: the latest state no
    longer restores, and the gap is named."""
    db, replica, sock = tmp_path / "app.db", tmp_path / "replica", f"{sockdir}/ls.sock"
    make_db(db)
    conf = tmp_path / "ls.conf"
    conf.write_text(f"[litestream]\nsocket = {sock}\n\n[db app]\npath = {db}\n\n"
                    f"[replica file]\ndb = app\nurl = file://{replica}\n")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_for(lambda: os.path.exists(sock) and rt.generations(replica), what="the first snapshot")
    for seed in (1, 2, 3):
        wait_writers(start_writers(db, [["--seed", seed, "--count", 30]]))
        st, body, _ = call(sock, "POST", "/v1/dbs/app/checkpoint?mode=TRUNCATE&timeout=10s")
        assert st == 200, body
    wait_writers(start_writers(db, [["--seed", 4, "--count", 10]]))
    st, body, _ = call(sock, "POST", "/v1/dbs/app/sync?wait=1&timeout=10s")
    assert st == 200, body
    assert rep.stop() == 0, rep.text()
    (gen,) = rt.generations(replica)
    assert len(rt.snapshots(replica, gen)) == 1
    segs = rt.segments(replica, gen)
    indexes = sorted({i for i, _, _, _ in segs})
    assert len(indexes) >= 3, indexes
    gone = indexes[1]
    for i, _, path, _ in segs:
        if i == gone:
            os.unlink(path)
    r = verify(run, tmp_path, f"file://{replica}")
    assert r.returncode == 1 and "FAILED" in r.stdout, r.stdout + r.stderr
    assert f"{gone:08x}" in r.stderr, r.stderr


def test_broken_older_snapshot_is_found(litestream_bin, run, tmp_path, sockdir):
    """The latest state restores from the newest snapshot; the older one is
    broken: verify still says so, before retention makes it matter."""
    db, replica, gen = two_snapshot_replica(litestream_bin, tmp_path, sockdir)
    idx, path = rt.snapshots(replica, gen)[0]
    open(path, "wb").write(b"not an lz4 frame")
    r = verify(run, tmp_path, "-generation", gen, f"file://{replica}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"snapshot {idx:08x}" in r.stderr, r.stderr
    # The latest state is still restorable, and the row says how far.
    (row,) = r.stdout.splitlines()[1:]
    assert "FAILED" in row and row.split()[-1] == os.path.basename(rt.segments(replica, gen)[-1][2])


def test_bad_arguments(run, tmp_path):
    r = run("verify", "-generation", "nothex", f"file://{tmp_path}/replica")
    assert r.returncode == 2 and "invalid generation name" in r.stderr, r.stderr
    r = run("verify", f"file://{tmp_path}/empty")
    assert r.returncode == 1 and "no generation to verify" in r.stderr, r.stderr


def test_s3_replica_verifies(litestream_bin, run, tmp_path, s3_server):
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=creds_env(s3_server))
    wait_writers(start_writers(db, [["--seed", 4, "--count", 80]]))
    assert rep.stop() == 0, rep.text()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    r = run("verify", "-scratch", scratch, "-config", conf, db, env=creds_env(s3_server))
    assert r.returncode == 0, r.stderr
    (row,) = r.stdout.splitlines()[1:]
    assert row.split()[2] == "ok", r.stdout
    # A segment flipped in the bucket: named, exit 1, nothing left behind.
    keys = sorted(k for k in objects(s3_server, prefix) if "/wal/" in k)
    key = keys[len(keys) // 2]
    local = tmp_path / "seg.lz4"
    s3_server.aws("s3", "cp", "--only-show-errors", f"s3://{s3_server.bucket}/{prefix}/{key}",
                  str(local))
    data = bytearray(local.read_bytes())
    data[len(data) // 2] ^= 0xFF
    local.write_bytes(bytes(data))
    upload(s3_server, local, prefix, key)
    r = run("verify", "-scratch", scratch, "-config", conf, db, env=creds_env(s3_server))
    assert r.returncode == 1 and os.path.basename(key) in r.stderr, r.stdout + r.stderr
    assert os.listdir(scratch) == []


def test_verify_on_the_socket(litestream_bin, tmp_path, sockdir):
    """POST /v1/dbs/NAME/verify on a running replicate: 202 at once, the
    check runs in a child process (a second request meanwhile is 409),
    status and metrics show the outcome; after a segment is damaged the
    next run fails naming it, and replication goes on."""
    db, replica, sock = tmp_path / "app.db", tmp_path / "replica", f"{sockdir}/ls.sock"
    make_db(db)
    conf = tmp_path / "ls.conf"
    conf.write_text(f"[litestream]\nsocket = {sock}\n\n[db app]\npath = {db}\n\n"
                    f"[replica file]\ndb = app\nurl = file://{replica}\n")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_for(lambda: os.path.exists(sock) and rt.generations(replica), what="the first snapshot")
    wait_writers(start_writers(db, [["--seed", 1, "--count", 80]]))
    st, body, _ = call(sock, "POST", "/v1/dbs/app/sync?wait=1&timeout=10s")
    assert st == 200, body

    def verify_state():
        st, body, _ = call(sock, "GET", "/v1/dbs/app")
        assert st == 200, body
        return body["replicas"][0]["verify"]

    assert verify_state() == {"running": False, "last": None, "last_ok": None, "ok": 0,
                              "failed": 0, "last_problem": None}
    st, body, _ = call(sock, "POST", "/v1/dbs/app/verify")
    assert st == 202 and body["verify"] == "running" and body["replicas"] == ["file"], body
    st, body, _ = call(sock, "POST", "/v1/dbs/app/verify")
    assert st == 409 and "already running" in body["error"], body
    wait_for(lambda: verify_state()["ok"] == 1, what="the verify to pass")
    v = verify_state()
    assert not v["running"] and v["last_ok"] is not None and v["last_problem"] is None, v
    st, text, _ = call(sock, "GET", "/metrics")
    assert f'litestream_replica_verify_total{{db="{db}",name="file",status="ok"}} 1' in text
    assert f'litestream_replica_last_verify_ok_timestamp_seconds{{db="{db}",name="file"}}' in text
    st, body, hdrs = call(sock, "GET", "/v1/dbs/app/verify")
    assert st == 405 and hdrs.get("Allow") == "POST", body

    (gen,) = rt.generations(replica)
    _, _, path, _ = rt.segments(replica, gen)[0]
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    st, body, _ = call(sock, "POST", "/v1/dbs/app/verify")
    assert st == 202, body
    wait_for(lambda: verify_state()["failed"] == 1, what="the verify to fail")
    v = verify_state()
    assert os.path.basename(path) in v["last_problem"] and v["ok"] == 1, v
    assert "verify failed" in rep.text() and os.path.basename(path) in rep.text()
    wait_writers(start_writers(db, [["--seed", 2, "--count", 20]]))
    st, body, _ = call(sock, "POST", "/v1/dbs/app/sync?wait=1&timeout=10s")
    assert st == 200, body
    assert rep.stop() == 0, rep.text()


def test_verify_stopped_by_shutdown_leaves_nothing(litestream_bin, tmp_path, sockdir):
    """SIGTERM while a verify child restores: replicate stops it and exits
    0, and the child's scratch directory (under TMPDIR) is gone."""
    db, replica, sock = tmp_path / "app.db", tmp_path / "replica", f"{sockdir}/ls.sock"
    rt_dir = tmp_path / "tmp"
    rt_dir.mkdir()
    make_db(db)
    wait_writers(start_writers(db, [["--seed", 1, "--count", 40, "--big-every", 4,
                                     "--big-bytes", 1 << 20]]))
    conf = tmp_path / "ls.conf"
    conf.write_text(f"[litestream]\nsocket = {sock}\n\n[db app]\npath = {db}\n\n"
                    f"[replica file]\ndb = app\nurl = file://{replica}\n")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log",
                     env={**os.environ, "TMPDIR": str(rt_dir)})
    wait_for(lambda: os.path.exists(sock) and rt.generations(replica), what="the first snapshot")
    st, body, _ = call(sock, "POST", "/v1/dbs/app/verify")
    assert st == 202, body
    wait_for(lambda: os.listdir(rt_dir), interval=0.005, what="the verify's scratch directory")
    assert rep.stop() == 0, rep.text()
    assert "every generation restores" not in rep.text(), "the verify ended before the stop"
    assert os.listdir(rt_dir) == [], os.listdir(rt_dir)
