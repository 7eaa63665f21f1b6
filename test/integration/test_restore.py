"""`litestream restore`: point in time, page-applying equal to SQLite's own
checkpoints byte for byte, corruption caught and named, and replicas laid
out by Litestream 0.3 (every naming form) restored."""
import os
import sqlite3
import subprocess
import time

import pytest

import replica_tools as rt
from ctlutil import call as ctl_call
from lsutil import Replicator, assert_same, restore, start_writers, wait_for, wait_writers
from test_replicate import make_db


def conf_for(tmp_path, db, replica, extra_db="", socket=None):
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"""
[litestream]
log-level = debug
{f"socket = {socket}" if socket else ""}

[db app]
path = {db}
min-checkpoint-page-count = 20
max-checkpoint-page-count = 200
{extra_db}

[replica file]
db = app
url = file://{replica}
""")
    return conf


def state(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*), COALESCE(SUM(n), 0), COALESCE(SUM(LENGTH(payload)), 0) FROM t").fetchone()
    finally:
        conn.close()


def newest_segment(replica):
    best = None
    for gen in rt.generations(replica):
        for index, offset, path, _ in rt.segments(replica, gen):
            key = (os.stat(path).st_mtime_ns, gen, index, offset)
            best = key if best is None or key > best else best
    return best


def marker(i):
    return f"commit-{i:06d}|".encode()


def test_point_in_time_by_timestamp_and_index(litestream_bin, run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    conf = conf_for(tmp_path, db, replica)
    records = []  # (commit number, time, state)

    def commit_and_record(i):
        before = newest_segment(replica)
        payload = (marker(i) * 400)[: 3000 + i * 10]
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (1, ?, ?)", (i, payload))
        wait_for(lambda: newest_segment(replica) != before, what="the commit's segment")
        time.sleep(0.03)  # the next object is strictly newer than the time recorded
        records.append((i, time.time(), state(db)))
        time.sleep(0.03)

    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    for i in range(40):
        commit_and_record(i)
    assert rep.stop() == 0
    # A second generation: the application checkpoints while litestream is down.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log2")
    for i in range(40, 70):
        commit_and_record(i)
    assert rep.stop() == 0
    conn.close()
    gens = rt.generations(replica)
    assert len(gens) == 2, gens

    # Which (generation, index) holds each commit: find its marker in the WAL.
    where = rt.commit_locations(replica, gens, records, marker)
    assert len(where) == len(records)
    assert len(set(where.values())) >= 5, "want several wal indexes"

    for k, (i, t, expected) in enumerate(records[::3]):
        out = tmp_path / f"ts-{k}.db"
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
        restore(run, f"file://{replica}", out, "-timestamp", ts)
        assert state(out) == expected, (i, ts, where[i])

    # Restoring to an index gives the state after the last commit in it.
    last_in = {}
    for i, _, st in records:
        last_in[where[i]] = st
    for (gen, index), expected in sorted(last_in.items()):
        out = tmp_path / f"idx-{gen}-{index}.db"
        restore(run, f"file://{replica}", out, "-generation", gen, "-index", f"{index:x}")
        assert state(out) == expected, (gen, index)


WORKLOADS = {
    "inserts": (4096, ["--seed", 1, "--count", 300]),
    "updates-deletes": (4096, ["--seed", 2, "--count", 400]),
    "vacuum": (4096, ["--seed", 3, "--count", 400, "--vacuum-every", 90]),
    "page-512": (512, ["--seed", 4, "--count", 200]),
    "page-65536": (65536, ["--seed", 5, "--count", 150, "--vacuum-every", 70]),
}


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_page_applying_equals_sqlite_checkpoints(litestream_bin, run, tmp_path, name):
    page_size, args = WORKLOADS[name]
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER, payload BLOB)")
    conn.close()
    sock = tmp_path / "ls.sock"
    rep = Replicator(litestream_bin, ["-config", conf_for(tmp_path, db, replica, socket=sock)],
                     tmp_path / "log")
    # Three batches with a TRUNCATE checkpoint between them, so that the
    # replica holds several WAL indexes however the sidecar's own
    # checkpoints fall on a busy machine.
    seed, count = args[1], args[3]
    for k in range(3):
        batch = list(args)
        batch[1], batch[3] = seed + 100 * k, count // 3
        wait_writers(start_writers(db, [batch]))
        wait_for(lambda: os.path.exists(sock), what="the control socket")
        st, body, _ = ctl_call(str(sock), "POST", "/v1/dbs/app/checkpoint?mode=TRUNCATE&timeout=20s",
                               body=b"", timeout=30)
        assert st == 200, body
    assert rep.stop() == 0, rep.text()
    gen = rt.latest_generation(replica)
    indexes = sorted({s[0] for s in rt.segments(replica, gen)})
    assert len(indexes) >= 2, f"want several wal indexes, got {indexes}"
    out = tmp_path / "restored.db"
    restore(run, f"file://{replica}", out)
    ref = tmp_path / "reference.db"
    rt.reference_restore(replica, gen, ref)
    assert out.read_bytes() == ref.read_bytes()
    assert_same(db, out)
    # The same at an index in the middle.
    mid = indexes[len(indexes) // 2]
    out_mid, ref_mid = tmp_path / "mid.db", tmp_path / "mid-ref.db"
    restore(run, f"file://{replica}", out_mid, "-generation", gen, "-index", f"{mid:x}")
    rt.reference_restore(replica, gen, ref_mid, max_index=mid)
    assert out_mid.read_bytes() == ref_mid.read_bytes()


@pytest.fixture
def replica_tree(litestream_bin, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf_for(tmp_path, db, replica)], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 6, "--count", 200, "--sleep", 0.008]]))
    assert rep.stop() == 0
    gen = rt.latest_generation(replica)
    assert len(rt.segments(replica, gen)) >= 6
    return db, replica, gen


def restore_fails(run, tmp_path, replica, *needles):
    out = tmp_path / "bad.db"
    r = run("restore", "-o", out, f"file://{replica}")
    assert r.returncode != 0
    for needle in needles:
        assert needle in r.stderr, r.stderr
    assert not out.exists()
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith("bad.db")]
    assert leftovers == [], leftovers
    return r.stderr


def flip(path, offset):
    data = bytearray(path.read_bytes() if hasattr(path, "read_bytes") else open(path, "rb").read())
    data[offset] ^= 0x55
    with open(path, "wb") as f:
        f.write(data)


def test_corrupt_snapshot(run, tmp_path, replica_tree):
    _, replica, gen = replica_tree
    _, snap = rt.snapshots(replica, gen)[-1]
    flip(snap, os.path.getsize(snap) // 2)
    restore_fails(run, tmp_path, replica, os.path.basename(snap))


def test_corrupt_segment_compressed_data(run, tmp_path, replica_tree):
    _, replica, gen = replica_tree
    segs = rt.segments(replica, gen)
    seg = segs[len(segs) // 2][2]
    flip(seg, os.path.getsize(seg) - 6)
    restore_fails(run, tmp_path, replica, os.path.basename(seg))


def test_corrupt_wal_frame_inside_segment(run, tmp_path, replica_tree):
    _, replica, gen = replica_tree
    segs = rt.segments(replica, gen)
    seg = segs[-2][2]
    data = bytearray(rt.lz4_decompress(seg))
    data[len(data) - 100] ^= 0x01  # inside the last frame's page; the lz4 frame stays valid
    os.unlink(seg)
    rt.lz4_compress(bytes(data), seg)
    err = restore_fails(run, tmp_path, replica, os.path.basename(seg))
    assert "checksum" in err


def test_missing_middle_segment(run, tmp_path, replica_tree):
    _, replica, gen = replica_tree
    segs = rt.segments(replica, gen)
    # A segment followed by another of the same index: a gap in the offsets.
    inner = [a for a, b in zip(segs, segs[1:]) if a[0] == b[0]]
    assert inner, "want an index with several segments"
    os.unlink(inner[len(inner) // 2][2])
    restore_fails(run, tmp_path, replica, "expected a segment at offset")


def test_missing_index(run, tmp_path, replica_tree):
    _, replica, gen = replica_tree
    segs = rt.segments(replica, gen)
    indexes = sorted({s[0] for s in segs})
    assert len(indexes) >= 3
    for index, _, path, _ in segs:
        if index == indexes[1]:
            os.unlink(path)
    restore_fails(run, tmp_path, replica, f"wal index {indexes[1]:08x} is missing")


def test_truncated_segment(run, tmp_path, replica_tree):
    _, replica, gen = replica_tree
    segs = rt.segments(replica, gen)
    seg = segs[len(segs) // 3][2]
    os.truncate(seg, os.path.getsize(seg) // 2)
    restore_fails(run, tmp_path, replica, os.path.basename(seg))


def test_never_overwrites(run, tmp_path, replica_tree):
    _, replica, _ = replica_tree
    out = tmp_path / "exists.db"
    out.write_bytes(b"precious")
    r = run("restore", "-o", out, f"file://{replica}")
    assert r.returncode == 1 and "already exists" in r.stderr
    assert out.read_bytes() == b"precious"
    r = run("restore", "-if-db-not-exists", "-o", out, f"file://{replica}")
    assert r.returncode == 0
    assert out.read_bytes() == b"precious"


def test_no_backups(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("restore", "-o", tmp_path / "x.db", f"file://{empty}")
    assert r.returncode == 1 and "no matching backups" in r.stderr
    r = run("restore", "-if-replica-exists", "-o", tmp_path / "x.db", f"file://{empty}")
    assert r.returncode == 0


def test_flag_errors(run, tmp_path):
    url = f"file://{tmp_path}"
    assert run("restore", "-o", tmp_path / "x.db", "-index", "zz", "-generation", "0123456789abcdef", url).returncode == 2
    assert run("restore", "-o", tmp_path / "x.db", "-index", "1", url).returncode == 2
    assert run("restore", "-o", tmp_path / "x.db", "-timestamp", "yesterday", url).returncode == 2
    assert run("restore", "-o", tmp_path / "x.db", "-parallelism", "0", url).returncode == 2


def test_litestream_03_layout_every_naming_form(run, tmp_path, replica_tree):
    """A replica as Litestream 0.3 releases wrote it: whole-index files,
    uncompressed (IIIIIIII.wal) and compressed (IIIIIIII.wal.lz4), then
    offset segments."""
    db, replica, gen = replica_tree
    old = tmp_path / "old"
    gdir = old / "generations" / gen
    (gdir / "snapshots").mkdir(parents=True)
    (gdir / "wal").mkdir()
    for index, path in rt.snapshots(replica, gen):
        os.link(path, gdir / "snapshots" / os.path.basename(path))
    by_index = {}
    for index, offset, path, compressed in rt.segments(replica, gen):
        by_index.setdefault(index, []).append((offset, path))
    for k, index in enumerate(sorted(by_index)):
        parts = sorted(by_index[index])
        if k % 3 == 0:
            whole = b"".join(rt.lz4_decompress(p) for _, p in parts)
            (gdir / "wal" / f"{index:08x}.wal").write_bytes(whole)
        elif k % 3 == 1:
            whole = b"".join(rt.lz4_decompress(p) for _, p in parts)
            rt.lz4_compress(whole, str(gdir / "wal" / f"{index:08x}.wal.lz4"))
        else:
            for _, p in parts:
                os.link(p, gdir / "wal" / os.path.basename(p))
    assert len(by_index) >= 3
    out = tmp_path / "from-old.db"
    restore(run, f"file://{old}", out)
    assert_same(db, out)
    ref = tmp_path / "ref.db"
    rt.reference_restore(old, gen, ref)
    assert out.read_bytes() == ref.read_bytes()
