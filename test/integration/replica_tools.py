"""Reading and writing replica trees directly (as Litestream 0.3 lays them
out, FORMAT.md), for tests: listing objects, decompressing with the `lz4`
command, and the reference restore that installs each WAL index as the
database's -wal and lets SQLite checkpoint it."""
import os
import re
import sqlite3
import subprocess

SNAPSHOT_RE = re.compile(r"^([0-9a-f]{8})\.snapshot\.lz4$")
SEGMENT_RE = re.compile(r"^([0-9a-f]{8})(?:_([0-9a-f]{8,16}))?\.wal(\.lz4)?$")


def generations(replica):
    d = os.path.join(replica, "generations")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def latest_generation(replica):
    """The generation holding the newest object (a busy test may start two)."""
    def newest(gen):
        root = os.path.join(replica, "generations", gen)
        return max((os.stat(os.path.join(d, f)).st_mtime_ns
                    for d, _, files in os.walk(root) for f in files), default=0)
    return max(generations(replica), key=newest)


def snapshots(replica, gen):
    d = os.path.join(replica, "generations", gen, "snapshots")
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        m = SNAPSHOT_RE.match(name)
        if m:
            out.append((int(m.group(1), 16), os.path.join(d, name)))
    return out


def segments(replica, gen):
    """[(index, offset, path, compressed)] in (index, offset) order."""
    d = os.path.join(replica, "generations", gen, "wal")
    out = []
    for name in os.listdir(d) if os.path.isdir(d) else []:
        m = SEGMENT_RE.match(name)
        if m:
            out.append((int(m.group(1), 16), int(m.group(2) or "0", 16), os.path.join(d, name),
                        m.group(3) is not None))
    return sorted(out)


def lz4_decompress(path):
    return subprocess.run(["lz4", "-d", "-c", path], capture_output=True, check=True).stdout


def lz4_compress(data, path):
    subprocess.run(["lz4", "-q", "-z", "-f", "-", path], input=data, check=True)


def read_object(path, compressed=True):
    if not compressed:
        with open(path, "rb") as f:
            return f.read()
    return lz4_decompress(path)


def reference_restore(replica, gen, out, max_index=None):
    """Litestream's way: newest snapshot, then each index as -wal, checkpointed by SQLite."""
    out = str(out)
    snaps = snapshots(replica, gen)
    if max_index is not None:
        snaps = [s for s in snaps if s[0] <= max_index]
    snap_index, snap_path = snaps[-1]
    with open(out, "wb") as f:
        f.write(lz4_decompress(snap_path))
    by_index = {}
    for index, offset, path, compressed in segments(replica, gen):
        if index < snap_index or (max_index is not None and index > max_index):
            continue
        by_index.setdefault(index, []).append((offset, path, compressed))
    for index in sorted(by_index):
        wal = b"".join(read_object(p, c) for _, p, c in sorted(by_index[index]))
        with open(f"{out}-wal", "wb") as f:
            f.write(wal)
        conn = sqlite3.connect(out)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        busy, log, ckpt = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0 and log == ckpt, (index, busy, log, ckpt)
        conn.close()
        for suffix in ("-wal", "-shm"):
            if os.path.exists(out + suffix):
                os.unlink(out + suffix)


def other_database(path):
    """A valid database with the tests' schema and other contents (one row),
    checkpointed: what a wrong replica holds."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER, payload BLOB)")
    conn.execute("INSERT INTO t VALUES (1, 9, 9, 'not the real data')")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def commit_locations(root, gens, records, marker):
    """{commit i: (generation, index)}: the WAL index whose segments first
    hold commit i's marker bytes, for each (i, ...) in records."""
    where = {}
    for gen in gens:
        for index, _, path, _ in segments(root, gen):
            data = lz4_decompress(path)
            for i, *_ in records:
                if i not in where and marker(i) in data:
                    where[i] = (gen, index)
    return where
