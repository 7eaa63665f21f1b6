"""The file-replica scenarios again, against a real S3 server (Ceph's RADOS
Gateway on loopback, the s3_server fixture): replication under writers and
kill -9, point-in-time restore across generations, the restore flags, the
listing commands, retention, validation and corruption. What litestream
stored or listed is checked against what a real S3 client (awscli) sees,
and objects are corrupted, replaced or deleted with that client."""
import json
import os
import random
import shutil
import sqlite3
import time
from datetime import datetime

import pytest

import replica_tools as rt
from lsutil import Replicator, assert_same, start_writers, wait_for, wait_writers
from test_control import call
from test_listing import (db_updated_ns, generation_rows, go_duration, parse_go_duration,
                          rfc3339, snapshot_rows, tabwriter, truncate_lag, wal_rows)
from test_replicate import make_db
from test_restore import marker, state
from test_s3 import (big_db, check_tiling, creds_env, download, list_objects, ls_env,
                     new_prefix, restore_conf, restore_url, write_conf)

pytestmark = pytest.mark.skipif(shutil.which("lz4") is None,
                                reason="the lz4 command is not installed (Debian package lz4)")


# ---- helpers -----------------------------------------------------------------

def lm_ms(last_modified):
    """awscli's LastModified (ISO 8601) in milliseconds since the epoch."""
    return int(datetime.fromisoformat(last_modified.replace("Z", "+00:00")).timestamp() * 1000)


def objects(s3, prefix):
    """{key under prefix/: (size, LastModified ms)}, as awscli lists them."""
    return {k[len(prefix) + 1:]: (size, lm_ms(lm))
            for k, (size, _, lm) in list_objects(s3, prefix).items()}


def parse_key(key):
    """("snapshot"|"wal", generation, index, offset) for a replica object key."""
    parts = key.split("/")
    assert len(parts) == 4 and parts[0] == "generations", f"unexpected object {key}"
    _, gen, kind, name = parts
    if kind == "snapshots":
        m = rt.SNAPSHOT_RE.match(name)
        assert m, f"unexpected object {key}"
        return "snapshot", gen, int(m[1], 16), 0
    m = rt.SEGMENT_RE.match(name)
    assert kind == "wal" and m and m[2] and m[3], f"unexpected object {key}"
    return "wal", gen, int(m[1], 16), int(m[2], 16)


def s3_generations(objs):
    return sorted({parse_key(k)[1] for k in objs})


def ts_arg(t):
    """A -timestamp argument (RFC 3339, milliseconds, UTC) for time.time() t."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def sync(db):
    """Asks the running sidecar (write_conf's socket) to sync and answer once
    the S3 replica holds every transaction committed so far."""
    answers = []

    def synced():
        answers.append(call(str(db.parent / "ls.sock"), "POST",
                            "/v1/dbs/app/sync?wait=1&timeout=20s", timeout=30)[:2])
        # 503 only until the database is open.
        assert answers[-1][0] in (200, 503), answers[-1]
        return answers[-1][0] == 200
    wait_for(synced, what="an acknowledged sync")
    return answers[-1][1]


def wait_socket(db):
    wait_for(lambda: os.path.exists(db.parent / "ls.sock"), what="the control socket")


def ok(run, *args, env):
    r = run(*args, env=env)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    assert r.stderr == "", r.stderr
    return r.stdout


def ok_json(run, *args, env):
    return json.loads(ok(run, *args, env=env))


def upload(s3, local, prefix, key):
    s3.aws("s3", "cp", "--only-show-errors", str(local), f"s3://{s3.bucket}/{prefix}/{key}")


# ---- replication -------------------------------------------------------------

def test_two_writers_sigterm_restore(litestream_bin, run, tmp_path, s3_server):
    """Config mode: two writer processes (one checkpointing and vacuuming on
    its own), SIGTERM; the replica restores to the source's rows, through
    the config and through the URL, and its segments tile every index."""
    db, prefix = tmp_path / "app.db", new_prefix()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix)
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 1, "--count", 300, "--checkpoint-every", 37,
                                     "--vacuum-every", 151, "--sleep", 0.002],
                                    ["--seed", 2, "--count", 300, "--big-every", 150,
                                     "--big-bytes", 512 << 10, "--sleep", 0.002]]))
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "ERROR" not in log, log
    restore_conf(run, conf, db, tmp_path / "by-conf.db")
    assert_same(db, tmp_path / "by-conf.db")
    restore_url(run, s3_server, prefix, tmp_path / "by-url.db")
    assert_same(db, tmp_path / "by-url.db")
    assert (tmp_path / "by-conf.db").read_bytes() == (tmp_path / "by-url.db").read_bytes()
    assert check_tiling(download(s3_server, prefix, tmp_path / "s3")) >= 2


def test_kill_9_mid_writes_and_restart(litestream_bin, run, tmp_path, s3_server):
    """The sidecar is killed with SIGKILL three times while a writer runs
    (uploads in flight); a restarted one catches up, and after SIGTERM the
    replica restores to exactly the source, with no range shipped twice."""
    db, prefix = tmp_path / "app.db", new_prefix()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix)
    make_db(db)
    rng = random.Random(7)
    writers = start_writers(db, [["--seed", 6, "--seconds", 4, "--big-every", 400,
                                  "--big-bytes", 1 << 20, "--sleep", 0.002]])
    for i in range(3):
        rep = Replicator(litestream_bin, ["-config", conf], tmp_path / f"log{i}", env=ls_env())
        time.sleep(rng.uniform(0.3, 0.9))
        rep.kill()
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(writers)
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    restore_conf(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    check_tiling(download(s3_server, prefix, tmp_path / "s3"))


def test_large_database_under_writes_keeps_its_history(litestream_bin, run, tmp_path, s3_server):
    """An 8 MiB database already being written when the sidecar starts:
    while its first snapshot goes up, litestream keeps checkpointing, but
    it keeps every shadow WAL index the replica has not shipped, so the
    generation holds one snapshot and then every WAL index after it, with
    no snapshot taken again for want of a deleted shadow WAL."""
    db, prefix = tmp_path / "app.db", new_prefix()
    big_db(db, 8)
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix,
                      db_extra="min-checkpoint-page-count = 20\nmax-checkpoint-page-count = 200")
    writers = start_writers(db, [["--seed", 17, "--seconds", 3, "--sleep", 0.004]])
    time.sleep(0.3)  # the writer is under way
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(writers)
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    restore_conf(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    objs = objects(s3_server, prefix)
    (gen,) = s3_generations(objs)
    snaps = sorted(parse_key(k)[2] for k in objs if k.endswith(".snapshot.lz4"))
    indexes = sorted({parse_key(k)[2] for k in objs if "/wal/" in k})
    gone = [line for line in log.splitlines() if "is gone" in line]
    assert len(snaps) == 1 and not gone, \
        f"{len(snaps)} snapshots {[f'{i:08x}' for i in snaps]}; log: {gone[:3]}"
    assert indexes == list(range(snaps[0], indexes[-1] + 1)), [f"{i:08x}" for i in indexes]


# ---- point in time -------------------------------------------------------------

def test_point_in_time_by_timestamp_and_index(litestream_bin, run, tmp_path, s3_server):
    """Commits recorded with the time each was acknowledged as stored in S3,
    over two generations: restoring to each time (with and without
    -generation) gives exactly the state then, and restoring to each WAL
    index with -generation -index gives the state after its last commit.
    The times compared are S3's LastModified."""
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, sync_interval="0",
                      db_extra="min-checkpoint-page-count = 4\nmax-checkpoint-page-count = 200")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    records = []  # (commit number, time, state)

    def commit_and_record(i):
        payload = (marker(i) * 400)[: 3000 + i * 10]
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (1, ?, ?)", (i, payload))
        sync(db)
        time.sleep(0.03)  # the next object is strictly newer than the time recorded
        records.append((i, time.time(), state(db)))
        time.sleep(0.03)

    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log1", env=ls_env())
    wait_socket(db)
    for i in range(16):
        commit_and_record(i)
    assert rep.stop() == 0, rep.text()
    # A second generation: the application checkpoints while litestream is down.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (db.parent / "ls.sock").unlink(missing_ok=True)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log2", env=ls_env())
    wait_socket(db)
    for i in range(16, 28):
        commit_and_record(i)
    assert rep.stop() == 0, rep.text()
    conn.close()

    root = download(s3_server, prefix, tmp_path / "s3")
    gens = rt.generations(root)
    assert len(gens) == 2, gens
    # Which (generation, index) holds each commit: find its marker in the WAL.
    where = rt.commit_locations(root, gens, records, marker)
    assert len(where) == len(records)
    assert len({g for g, _ in where.values()}) == 2
    assert len(set(where.values())) >= 5, f"want several wal indexes: {sorted(set(where.values()))}"

    url, env = s3_server.replica_url(prefix), creds_env(s3_server)
    for k, (i, t, expected) in enumerate(records):
        out = tmp_path / f"ts-{k}.db"
        extra = ["-generation", where[i][0]] if k % 2 else []
        r = run("restore", "-o", out, "-timestamp", ts_arg(t), *extra, url, env=env)
        assert r.returncode == 0, (i, ts_arg(t), extra, r.stderr)
        assert state(out) == expected, (i, ts_arg(t), where[i], extra)

    # Restoring to an index gives the state after the last commit in it.
    last_in = {}
    for i, _, st in records:
        last_in[where[i]] = st
    for (gen, index), expected in sorted(last_in.items()):
        out = tmp_path / f"idx-{gen}-{index}.db"
        r = run("restore", "-o", out, "-generation", gen, "-index", f"{index:x}", url, env=env)
        assert r.returncode == 0, (gen, index, r.stderr)
        assert state(out) == expected, (gen, index)


# ---- one replicated tree, shared by the restore-flag and corruption tests -----

@pytest.fixture(scope="module")
def s3_tree(litestream_bin, s3_server, tmp_path_factory):
    """A database replicated to S3 in one generation with several WAL
    indexes, some of them in several segments."""
    tmp = tmp_path_factory.mktemp("s3tree")
    db, prefix = tmp / "app.db", new_prefix()
    make_db(db)
    # Indexes of about 80 pages, shipped on 50ms ticks: several segments each.
    conf = write_conf(tmp / "ls.conf", db, s3_server, prefix, sync_interval="50ms",
                      db_extra="min-checkpoint-page-count = 80\nmax-checkpoint-page-count = 400")
    rep = Replicator(litestream_bin, ["-config", conf], tmp / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 16, "--count", 200, "--sleep", 0.004]]))
    assert rep.stop() == 0, rep.text()
    objs = objects(s3_server, prefix)
    (gen,) = s3_generations(objs)
    # What a restore to the latest state reads: the newest snapshot and the
    # segments from its index on.
    snap_index, snap = max((parse_key(k)[2], k) for k in objs if k.endswith(".snapshot.lz4"))
    segs = sorted(parse_key(k)[2:] + (k,) for k in objs
                  if parse_key(k)[0] == "wal" and parse_key(k)[2] >= snap_index)
    assert len(segs) >= 6 and len({s[0] for s in segs}) >= 3, segs
    assert len(segs) > len({s[0] for s in segs}), f"want an index with several segments: {segs}"
    return {"db": db, "prefix": prefix, "gen": gen, "objs": objs, "snap": snap, "segs": segs,
            "conf": conf}


def test_restore_flags(run, tmp_path, s3_server, s3_tree):
    """-parallelism 1 and the default give the same bytes, equal to the
    source; -if-db-not-exists leaves an existing file alone; against an
    empty prefix a restore fails with "no matching backups" unless
    -if-replica-exists, which exits 0 and writes nothing."""
    url, env = s3_server.replica_url(s3_tree["prefix"]), creds_env(s3_server)
    one, default = tmp_path / "p1.db", tmp_path / "p8.db"
    r = run("restore", "-parallelism", "1", "-o", one, url, env=env)
    assert r.returncode == 0, r.stderr
    r = run("restore", "-o", default, url, env=env)
    assert r.returncode == 0, r.stderr
    assert one.read_bytes() == default.read_bytes()
    assert_same(s3_tree["db"], one)

    out = tmp_path / "exists.db"
    out.write_bytes(b"precious")
    r = run("restore", "-o", out, url, env=env)
    assert r.returncode == 1 and "already exists" in r.stderr, r.stderr
    r = run("restore", "-if-db-not-exists", "-o", out, url, env=env)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"precious"

    empty = s3_server.replica_url(new_prefix())
    r = run("restore", "-o", tmp_path / "x.db", empty, env=env)
    assert r.returncode == 1 and "no matching backups" in r.stderr, r.stderr
    r = run("restore", "-if-replica-exists", "-o", tmp_path / "x.db", empty, env=env)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "x.db").exists()


def copy_tree(s3, src, dst):
    s3.aws("s3", "cp", "--recursive", "--only-show-errors",
           f"s3://{s3.bucket}/{src}", f"s3://{s3.bucket}/{dst}")


def restore_fails(run, tmp_path, s3, prefix, *needles):
    out = tmp_path / "bad.db"
    r = run("restore", "-o", out, s3.replica_url(prefix), env=creds_env(s3))
    assert r.returncode != 0, r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr
    assert not out.exists()
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith("bad.db")]
    assert leftovers == [], leftovers
    return r.stderr


def flip(data, offset):
    data = bytearray(data)
    data[offset] ^= 0x55
    return bytes(data)


def test_corrupt_snapshot_object(run, tmp_path, s3_server, s3_tree):
    """A snapshot object with a byte changed in its middle, uploaded over
    the original: restore fails naming its key and leaves no file."""
    prefix = new_prefix()
    copy_tree(s3_server, s3_tree["prefix"], prefix)
    key = s3_tree["snap"]
    local = tmp_path / "snap.lz4"
    s3_server.aws("s3", "cp", "--only-show-errors", f"s3://{s3_server.bucket}/{prefix}/{key}",
                  local)
    data = local.read_bytes()
    local.write_bytes(flip(data, len(data) // 2))
    upload(s3_server, local, prefix, key)
    restore_fails(run, tmp_path, s3_server, prefix, key)


def test_corrupt_segment_object(run, tmp_path, s3_server, s3_tree):
    """A segment object whose compressed data is damaged near its end
    (checksummed by the LZ4 frame): restore fails naming its key."""
    prefix = new_prefix()
    copy_tree(s3_server, s3_tree["prefix"], prefix)
    segs = s3_tree["segs"]
    key = segs[len(segs) // 2][2]
    local = tmp_path / "seg.lz4"
    s3_server.aws("s3", "cp", "--only-show-errors", f"s3://{s3_server.bucket}/{prefix}/{key}",
                  local)
    data = local.read_bytes()
    local.write_bytes(flip(data, len(data) - 6))
    upload(s3_server, local, prefix, key)
    restore_fails(run, tmp_path, s3_server, prefix, key)


def test_corrupt_wal_frame_inside_segment_object(run, tmp_path, s3_server, s3_tree):
    """A segment recompressed with one bit of a WAL frame changed (a valid
    LZ4 frame, a broken WAL checksum chain): restore fails naming its key
    and the checksum."""
    prefix = new_prefix()
    copy_tree(s3_server, s3_tree["prefix"], prefix)
    key = s3_tree["segs"][-2][2]
    local = tmp_path / "seg.lz4"
    s3_server.aws("s3", "cp", "--only-show-errors", f"s3://{s3_server.bucket}/{prefix}/{key}",
                  local)
    data = bytearray(rt.lz4_decompress(str(local)))
    data[len(data) - 100] ^= 0x01  # inside the last frame's page
    local.unlink()
    rt.lz4_compress(bytes(data), str(local))
    upload(s3_server, local, prefix, key)
    err = restore_fails(run, tmp_path, s3_server, prefix, key)
    assert "checksum" in err


def test_missing_middle_segment_object(run, tmp_path, s3_server, s3_tree):
    """A segment followed by another of the same index, deleted with
    awscli: the gap in the offsets stops the restore."""
    prefix = new_prefix()
    copy_tree(s3_server, s3_tree["prefix"], prefix)
    segs = s3_tree["segs"]
    inner = [a for a, b in zip(segs, segs[1:]) if a[0] == b[0]]
    assert inner, "want an index with several segments"
    k = segs.index(inner[len(inner) // 2])
    (index, offset, key), after = segs[k], segs[k + 1][2]
    s3_server.aws("s3", "rm", "--only-show-errors", f"s3://{s3_server.bucket}/{prefix}/{key}")
    assert key not in objects(s3_server, prefix)
    # Named: the segment found where the deleted one should have been.
    restore_fails(run, tmp_path, s3_server, prefix, after,
                  f"expected a segment at offset {offset} of wal index {index:08x}")


# ---- listing -------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_site(litestream_bin, s3_server, tmp_path_factory):
    """A database replicated to S3 in two generations (the application
    checkpointed with TRUNCATE while the sidecar was down)."""
    tmp = tmp_path_factory.mktemp("s3listing")
    db, prefix = tmp / "app.db", new_prefix()
    make_db(db)
    conf = write_conf(tmp / "ls.conf", db, s3_server, prefix)
    rep = Replicator(litestream_bin, ["-config", conf], tmp / "log1", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 21, "--count", 150, "--big-every", 75,
                                     "--big-bytes", 256 << 10, "--sleep", 0.004]]))
    assert rep.stop() == 0, rep.text()
    assert len(s3_generations(objects(s3_server, prefix))) == 1
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("INSERT INTO t (writer, n) VALUES (0, 0)")
    conn.close()
    rep = Replicator(litestream_bin, ["-config", conf], tmp / "log2", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 22, "--count", 100, "--sleep", 0.004]]))
    assert rep.stop() == 0, rep.text()
    objs = objects(s3_server, prefix)
    assert len(s3_generations(objs)) == 2, sorted(objs)
    return {"db": db, "prefix": prefix, "conf": conf, "objs": objs,
            "url": s3_server.replica_url(prefix)}


def check_times(got, objs, key_of, fields=(("created", "created_ms"),)):
    """Each listed time is S3's LastModified of that object (within a
    second), printed as RFC 3339 UTC."""
    for o in got:
        for text, ms in fields:
            assert abs(o[ms] - objs[key_of(o)][1]) <= 1000, (o, objs[key_of(o)])
            assert o[text] == rfc3339(o[ms]), o


def snapshot_key(o):
    return f"generations/{o['generation']}/snapshots/{o['index']:08x}.snapshot.lz4"


def segment_key(o):
    return f"generations/{o['generation']}/wal/{o['index']:08x}_{o['offset']:08x}.wal.lz4"


def expected_s3_snapshots(name, objs):
    out = []
    for key, (size, _) in objs.items():
        kind, gen, index, _ = parse_key(key)
        if kind == "snapshot":
            out.append({"replica": name, "generation": gen, "index": index, "size": size})
    return sorted(out, key=lambda o: (o["generation"], o["index"]))


def expected_s3_wal(name, objs, generation=None):
    out = []
    for key, (size, _) in objs.items():
        kind, gen, index, offset = parse_key(key)
        if kind == "wal" and generation in (None, gen):
            out.append({"replica": name, "generation": gen, "index": index, "offset": offset,
                        "size": size})
    return sorted(out, key=lambda o: (o["generation"], o["index"], o["offset"]))


def without_times(objs):
    return [{k: v for k, v in o.items() if k not in ("created", "created_ms")} for o in objs]


def test_snapshots_listing(run, s3_server, s3_site):
    """`snapshots` by config (all replicas, then -replica s3) and by URL:
    one row per snapshot object awscli lists, with its generation, index
    and size, created = its LastModified; the table is the JSON laid out
    as Litestream 0.3 does."""
    objs = s3_site["objs"]
    conf_args = ["-config", s3_site["conf"]]
    for name, target, extra in [("s3", s3_site["db"], conf_args),
                                ("s3", s3_site["db"], conf_args + ["-replica", "s3"]),
                                ("s3", s3_site["url"], [])]:
        env = ls_env() if extra else creds_env(s3_server)
        got = ok_json(run, "snapshots", *extra, "-json", target, env=env)
        want = expected_s3_snapshots(name, objs)
        assert len({o["generation"] for o in want}) == 2
        assert without_times(got) == want
        check_times(got, objs, snapshot_key)
        assert ok(run, "snapshots", *extra, target, env=env) == tabwriter(snapshot_rows(got))


def test_wal_listing(run, s3_server, s3_site):
    """`wal` by config and by URL, all generations and one: every segment
    object once, offsets in decimal, sizes as stored."""
    objs = s3_site["objs"]
    gens = s3_generations(objs)
    conf_args = ["-config", s3_site["conf"]]
    for target, extra, gen in [(s3_site["db"], conf_args, None),
                               (s3_site["db"], conf_args + ["-generation", gens[1]], gens[1]),
                               (s3_site["url"], [], None),
                               (s3_site["url"], ["-generation", gens[0]], gens[0])]:
        env = ls_env() if extra[:1] == ["-config"] else creds_env(s3_server)
        got = ok_json(run, "wal", *extra, "-json", target, env=env)
        want = expected_s3_wal("s3", objs, gen)
        assert want and without_times(got) == want
        check_times(got, objs, segment_key)
        assert ok(run, "wal", *extra, target, env=env) == tabwriter(wal_rows(got))
    all_segs = expected_s3_wal("s3", objs)
    assert len({o["generation"] for o in all_segs}) == 2
    assert any(o["offset"] > 0 for o in all_segs)


def generation_bounds(objs, gen):
    times = [t for k, (_, t) in objs.items() if k.startswith(f"generations/{gen}/")]
    return min(times), max(times)


def test_generations_listing_by_config(run, s3_site):
    """`generations` by config: both generations, start and end = the
    oldest and newest LastModified under each, lag = the database's last
    write minus end, in Go's notation; the older generation ended before
    the newer began and lags further behind."""
    objs, db = s3_site["objs"], s3_site["db"]
    ref = db_updated_ns(db)
    args = ["generations", "-config", s3_site["conf"]]
    got = ok_json(run, *args, "-json", db, env=ls_env())
    assert [o["generation"] for o in got] == s3_generations(objs)
    for o in got:
        assert o["name"] == "s3"
        lo, hi = generation_bounds(objs, o["generation"])
        assert abs(o["start_ms"] - lo) <= 1000 and abs(o["end_ms"] - hi) <= 1000, (o, lo, hi)
        assert o["start"] == rfc3339(o["start_ms"]) and o["end"] == rfc3339(o["end_ms"]), o
        lag = ref - o["end_ms"] * 10**6
        assert o["lag"] == go_duration(truncate_lag(lag)), (o, lag)
        assert o["lag_ms"] == abs(lag) // 10**6 * (-1 if lag < 0 else 1), (o, lag)
    assert ok(run, *args, db, env=ls_env()) == tabwriter(generation_rows(got))
    assert ok(run, *args, "-replica", "s3", db, env=ls_env()) == tabwriter(generation_rows(got))
    g1, g2 = sorted(got, key=lambda o: o["start_ms"])
    assert g1["end_ms"] <= g2["start_ms"]
    assert g1["lag_ms"] > g2["lag_ms"]


def test_generations_listing_by_url(run, s3_server, s3_site):
    """`generations` by URL: the same generations and bounds, the lag
    measured from the current time."""
    objs, url, env = s3_site["objs"], s3_site["url"], creds_env(s3_server)
    before = time.time_ns()
    out = ok(run, "generations", url, env=env)
    got = ok_json(run, "generations", "-json", url, env=env)
    after = time.time_ns()
    assert [o["generation"] for o in got] == s3_generations(objs)
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["name", "generation", "lag", "start", "end"]
    assert len(rows) == len(got) + 1
    for row, o in zip(rows[1:], got):
        lo, hi = generation_bounds(objs, o["generation"])
        assert abs(o["start_ms"] - lo) <= 1000 and abs(o["end_ms"] - hi) <= 1000, (o, lo, hi)
        assert [row[0], row[1], row[3], row[4]] == ["s3", o["generation"], o["start"], o["end"]]
        end_ns = o["end_ms"] * 10**6
        for lag in (row[2], o["lag"]):
            assert go_duration(parse_go_duration(lag)) == lag
            assert truncate_lag(before - end_ns) <= parse_go_duration(lag) <= \
                truncate_lag(after - end_ns)
        assert (before - end_ns) // 10**6 <= o["lag_ms"] <= (after - end_ns) // 10**6


def test_empty_prefix_lists_header_only(run, s3_server):
    """A prefix holding nothing lists as an empty replica: the header, or []."""
    url, env = s3_server.replica_url(new_prefix()), creds_env(s3_server)
    for cmd, header in [("generations", "name  generation  lag  start  end\n"),
                        ("snapshots", "replica  generation  index  size  created\n"),
                        ("wal", "replica  generation  index  offset  size  created\n")]:
        assert ok(run, cmd, url, env=env) == header
        assert ok_json(run, cmd, "-json", url, env=env) == []


# ---- retention -------------------------------------------------------------------

@pytest.mark.timing
def test_snapshot_interval_paces_snapshots_under_writes(litestream_bin, tmp_path, s3_server):
    """snapshot-interval 700ms with S3's usual positive sync-interval
    (200ms) and a writer that never pauses for 3 s: snapshots at new WAL
    indexes are written at that pace while it writes, not only once it
    stops."""
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, snapshot_interval="700ms",
                      db_extra="min-checkpoint-page-count = 50")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_for(lambda: "snapshot written" in rep.text(), what="the generation's first snapshot")
    wait_writers(start_writers(db, [["--seed", 1, "--seconds", 3, "--sleep", 0.005]]))
    during = [line for line in rep.text().splitlines() if "snapshot written" in line]
    assert rep.stop() == 0, rep.text()
    indexes = {parse_key(k)[2] for k in objects(s3_server, prefix) if k.endswith(".snapshot.lz4")}
    # 3 s at 700ms: four are due, each at a new WAL index once the WAL
    # restarts; on a loaded machine fewer restarts happen, so ask for one
    # besides the first while the writer runs (none would mean "only once it
    # stops").
    assert len(during) >= 2 and len(indexes) >= 2, \
        f"snapshots written while the writer ran: {during}; indexes in S3: {sorted(indexes)}"


@pytest.mark.timing  # a 2 s window measured on the wall clock; flaky beside another worker
def test_snapshot_interval_and_retention(litestream_bin, run, tmp_path, s3_server):
    """snapshot-interval 700ms, retention 2s: a stale generation goes whole,
    the current one loses its first snapshots and every segment before the
    oldest kept; the replica restores to the latest state and to each commit
    acknowledged inside the window (the last 2 s before the sidecar
    stopped), and not to a time before the window."""
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    # sync-interval 0, as for a file replica: each commit is shipped at once.
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, sync_interval="0",
                      snapshot_interval="700ms", retention="2s",
                      retention_check_interval="500ms",
                      db_extra="min-checkpoint-page-count = 50")
    # A generation that retention must remove whole once it is out of the
    # window (S3 sets LastModified itself: it ages from now).
    stale = tmp_path / "stale.lz4"
    rt.lz4_compress(b"stale", str(stale))
    upload(s3_server, stale, prefix, "generations/00000000000000aa/snapshots/00000000.snapshot.lz4")
    started = time.time()

    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 1, "--seconds", 3, "--sleep", 0.005]]))

    def trimmed():
        objs = objects(s3_server, prefix)
        gens = s3_generations(objs)
        if "00000000000000aa" in gens or len(gens) != 1:
            return False
        snaps = [parse_key(k)[2] for k in objs if k.endswith(".snapshot.lz4")]
        return bool(snaps) and min(snaps) > 0
    try:
        wait_for(trimmed, timeout=15, interval=0.5, what="retention to trim the replica")
    except AssertionError as e:
        raise AssertionError(f"{e}; objects: {sorted(objects(s3_server, prefix))}; "
                             f"log:\n{rep.text()}") from None

    # Commits acknowledged as stored, with the time each was.
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    records = []
    for i in range(5):
        conn.execute("INSERT INTO t (writer, n, payload) VALUES (7, ?, ?)", (i, marker(i) * 100))
        sync(db)
        time.sleep(0.03)
        records.append((time.time(), state(db)))
        time.sleep(0.2)
    conn.close()
    stopped = time.time()
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "retention: removed" in log and "ERROR" not in log, log

    objs = objects(s3_server, prefix)
    (gen,) = s3_generations(objs)
    snaps = sorted(parse_key(k)[2] for k in objs if k.endswith(".snapshot.lz4"))
    assert snaps[0] > 0, snaps
    # Nothing before the oldest kept snapshot's index remains.
    segs = [parse_key(k)[2] for k in objs if "/wal/" in k]
    assert segs and min(segs) >= snaps[0], (snaps, sorted(segs)[:5])

    restore_conf(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    url, env = s3_server.replica_url(prefix), creds_env(s3_server)
    # The last retention pass ran at or before `stopped`: its window held
    # every time from stopped - 2s on (a margin for the clock's grain).
    inside = [(t, st) for t, st in records if t >= stopped - 2 + 0.3]
    assert len(inside) >= 3, (stopped, [t for t, _ in records])
    for k, (t, expected) in enumerate(inside):
        out = tmp_path / f"ts-{k}.db"
        r = run("restore", "-o", out, "-timestamp", ts_arg(t), url, env=env)
        assert r.returncode == 0, (ts_arg(t), r.stderr, sorted(objs.items()))
        assert state(out) == expected, ts_arg(t)
    # Before the window: what would restore it was removed.
    out = tmp_path / "before.db"
    r = run("restore", "-o", out, "-timestamp", ts_arg(started), url, env=env)
    assert r.returncode == 1 and "no backup found at or before" in r.stderr, r.stderr
    assert not out.exists()


# ---- validation ------------------------------------------------------------------

def test_validation_passes_under_writes(litestream_bin, tmp_path, s3_server):
    """validation-interval 300ms while a writer runs: the replica, restored
    from S3 on the side, matches the database at the same position, again
    and again."""
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, validation_interval="300ms",
                      db_extra="min-checkpoint-page-count = 40")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 1, "--seconds", 3, "--sleep", 0.002]]))
    wait_for(lambda: rep.text().count("validation ok") >= 3, timeout=30, what="three validations")
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "VALIDATION FAILED" not in log, log
    assert "validation:" not in log and "ERROR" not in log, log


def test_validation_catches_a_replaced_snapshot(litestream_bin, tmp_path, s3_server):
    """The snapshot object replaced in S3 (with awscli) by a valid
    LZ4-compressed database with other contents: the next validation
    reports the mismatch."""
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    # Data in the database file itself, so the snapshot matters to the result.
    wait_writers(start_writers(db, [["--seed", 4, "--count", 200]]))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, validation_interval="300ms",
                      db_extra="min-checkpoint-page-count = 40")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 2, "--count", 50]]))
    wait_for(lambda: "validation ok" in rep.text(), timeout=30, what="a first validation")
    assert "VALIDATION FAILED" not in rep.text(), rep.text()

    other = rt.other_database(tmp_path / "other.db")
    replacement = tmp_path / "other.snapshot.lz4"
    rt.lz4_compress(other.read_bytes(), str(replacement))
    snaps = [k for k in objects(s3_server, prefix) if k.endswith(".snapshot.lz4")]
    assert snaps
    for key in snaps:
        upload(s3_server, replacement, prefix, key)
    wait_writers(start_writers(db, [["--seed", 3, "--count", 20]]))
    wait_for(lambda: "VALIDATION FAILED" in rep.text(), timeout=30, what="the mismatch")
    assert rep.stop() == 0, rep.text()
