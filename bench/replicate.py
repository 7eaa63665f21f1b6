#!/usr/bin/python3
"""Replication benchmark for litestream (see bench/README.md).

    python3 bench/replicate.py --bin PATH/TO/litestream [--quick] [--tmpdir DIR]
        [--compare OTHER_LITESTREAM]... [--speedtest1 PATH/TO/speedtest1] [--age]
        [--lag-rounds N]

Runs a fixed, deterministic workload on a fresh database each time: once
without the sidecar (baseline) and once with `litestream replicate DB
file:///REPLICA` (default settings), then a separate commit-to-replica lag
phase, a count of the sidecar's fsyncs (under strace, in an extra run), and a
"bursts" workload (busy_timeout 0: 5 MiB transactions between single-row
commits). Each replica is restored and checked. With --compare, every
sidecar phase also runs with the other binary (the baseline is shared) and
each binary restores the other's replica. With --age, our binary's
sidecar phases also run with an age-encrypted replica (age-recipients, a
key from age-keygen), as a row "ours+age" beside the plain one. With --speedtest1, SQLite's
speedtest1 runs beside each sidecar. Prints the figures, and one JSON line
with the same figures at the end. Exits non-zero when something is wrong
with --bin (the sidecar fails or exits non-zero, a restored database
differs); failures of a --compare binary are reported, not fatal.

The writer is always a separate process: this same file run as
`replicate.py _writer MODE ...`. Only the standard library is used.
"""

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

PYTHON = "/usr/bin/python3"
MiB = 1024 * 1024
LZ4_MAGIC = 0x184D2204
AGE_MAGIC = b"age-encryption.org/v1\n"

# The workload. --quick divides it by about ten.
FULL = dict(single_txns=20000, row_bytes=100, bulk_mib=200, blob_kib=64, txn_mib=4,
            lag_samples=300, lag_pause_ms=25,
            bursts_s=10, burst_blobs=80, burst_singles=50, speedtest_runs=10)
QUICK = dict(single_txns=2000, row_bytes=100, bulk_mib=20, blob_kib=64, txn_mib=4,
             lag_samples=50, lag_pause_ms=25,
             bursts_s=3, burst_blobs=80, burst_singles=50, speedtest_runs=3)
SPEEDTEST_SIZE = 50
MIN_LAG_SAMPLES_FULL = 200
LAG_TIMEOUT_S = 5.0          # a commit not replicated by then counts as a timeout
READY_TIMEOUT_S = 30.0       # sidecar start: first snapshot in the replica
DRAIN_TIMEOUT_S = 300.0      # replica catching up after the writer ends
STOP_TIMEOUT_S = 60.0        # SIGTERM to exit
CAUGHT_UP_STABLE_S = 1.5     # replica covering an unchanged shadow WAL that long = caught up
                             # (> the 1 s WAL monitor interval of Litestream 0.3.13)
SPEEDTEST_TIMEOUT_S = 600.0
BUSY_GIVE_UP_S = 60.0        # bursts writer: one statement BUSY for that long is an error
WAL_SAMPLE_S = 0.002
FSYNC_CALLS = ("fsync", "fdatasync", "sync_file_range")


class BenchError(Exception):
    pass


def now():
    return time.monotonic()  # CLOCK_MONOTONIC: comparable across processes


# ---------------------------------------------------------------- writer ----

def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def table_digest(conn, sql):
    h = hashlib.sha256()
    n = 0
    for rowid, val in conn.execute(sql):
        h.update(struct.pack("<q", rowid))
        h.update(struct.pack("<q", len(val)))
        h.update(val)
        n += 1
    return n, h.hexdigest()


def db_summary(conn):
    nt, dt = table_digest(conn, "SELECT id, v FROM t ORDER BY id")
    nb, db = table_digest(conn, "SELECT id, b FROM blobs ORDER BY id")
    return {"t_rows": nt, "t_sha256": dt, "blobs_rows": nb, "blobs_sha256": db}


def is_busy(e):
    msg = str(e).lower()
    return "locked" in msg or "busy" in msg


class BusyRetry:
    """Runs a statement until it does not fail with SQLITE_BUSY, 1 ms apart,
    counting every BUSY. When the statement would have opened the write
    transaction, the read transaction a failed attempt leaves open is
    rolled back first (nothing was written in it yet): retrying on that
    stale snapshot would only return BUSY_SNAPSHOT forever."""

    def __init__(self, conn):
        self.conn = conn
        self.count = 0

    def run(self, fn, first_in_txn=False):
        t0 = now()
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
                self.count += 1
                if now() - t0 > BUSY_GIVE_UP_S:
                    raise
                if first_in_txn and self.conn.in_transaction:
                    self.conn.rollback()
                time.sleep(0.001)


def writer_main(argv):
    """The application: a separate process, Python's sqlite3 with its defaults
    (busy timeout 0 in the bursts workload)."""
    mode, path = argv[0], argv[1]
    p = json.loads(argv[2])
    # default isolation_level; timeout=5.0 s (busy timeout) is Python's default
    conn = sqlite3.connect(path, timeout=0 if mode == "bursts" else 5.0)
    br = BusyRetry(conn)
    pragma = lambda name: br.run(lambda: conn.execute(f"PRAGMA {name}").fetchone()[0])
    settings = {
        "journal_mode": pragma("journal_mode"), "synchronous": pragma("synchronous"),
        "wal_autocheckpoint": pragma("wal_autocheckpoint"), "page_size": pragma("page_size"),
        "busy_timeout": pragma("busy_timeout"),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
    }
    emit({"event": "ready", "settings": settings})
    rng = random.Random(20240601)
    if mode == "load":
        rows = [rng.randbytes(p["row_bytes"]) for _ in range(p["single_txns"])]
        emit({"event": "phase", "phase": "single"})
        t0 = now()
        for v in rows:
            conn.execute("INSERT INTO t (v) VALUES (?)", (v,))
            conn.commit()
        single_s = now() - t0
        emit({"event": "done", "phase": "single", "seconds": single_s})
        blob = p["blob_kib"] * 1024
        n_blobs = p["bulk_mib"] * MiB // blob
        per_txn = p["txn_mib"] * MiB // blob
        blobs = [rng.randbytes(blob) for _ in range(n_blobs)]  # generated before the clock starts
        emit({"event": "phase", "phase": "bulk"})
        t0 = now()
        for i in range(0, n_blobs, per_txn):
            for b in blobs[i:i + per_txn]:
                conn.execute("INSERT INTO blobs (b) VALUES (?)", (b,))
            conn.commit()
        bulk_s = now() - t0
        emit({"event": "done", "phase": "bulk", "seconds": bulk_s})
        del blobs
        emit({"event": "summary", "summary": db_summary(conn)})
    elif mode == "lag":
        wal = path + "-wal"
        for line in sys.stdin:
            if line.strip() != "go":
                break
            conn.execute("INSERT INTO t (v) VALUES (?)", (rng.randbytes(p["row_bytes"]),))
            conn.commit()
            t = now()
            emit({"event": "commit", "t": t, "wal_size": os.stat(wal).st_size})
        emit({"event": "summary", "summary": db_summary(conn)})
    elif mode == "bursts":
        blob = p["blob_kib"] * 1024
        br.count = 0
        bursts = singles = 0
        emit({"event": "phase", "phase": "bursts"})
        t0 = now()
        deadline = t0 + p["bursts_s"]
        while now() < deadline:
            data = rng.randbytes(blob * p["burst_blobs"])  # one 5 MiB transaction
            for j in range(p["burst_blobs"]):
                b = data[j * blob:(j + 1) * blob]
                br.run(lambda: conn.execute("INSERT INTO blobs (b) VALUES (?)", (b,)),
                       first_in_txn=(j == 0))
            br.run(conn.commit)
            bursts += 1
            for _ in range(p["burst_singles"]):
                v = rng.randbytes(p["row_bytes"])
                br.run(lambda: conn.execute("INSERT INTO t (v) VALUES (?)", (v,)), first_in_txn=True)
                br.run(conn.commit)
                singles += 1
        emit({"event": "done", "phase": "bursts", "seconds": now() - t0, "busy": br.count,
              "bursts": bursts, "singles": singles})
        emit({"event": "summary", "summary": br.run(lambda: db_summary(conn))})
    conn.close()
    return 0


# ------------------------------------------------------------- helpers ----

def create_db(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB NOT NULL)")
    conn.commit()
    conn.close()


def create_empty_db(path):
    """A database in WAL mode with no tables (page 1 only)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = wal")
    conn.close()


def _lz4_varlen(data, i, n):
    while True:
        b = data[i]
        i += 1
        n += b
        if b != 255:
            return i, n


def lz4_block_length(data, i, end):
    """Decompressed length of one LZ4 block (data[i:end]) without decoding it:
    the sum of every sequence's literal and match lengths."""
    out = 0
    while i < end:
        token = data[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            i, lit = _lz4_varlen(data, i, lit)
        i += lit
        out += lit
        if i >= end:  # the last sequence has literals only
            break
        i += 2  # match offset
        ml = token & 15
        if ml == 15:
            i, ml = _lz4_varlen(data, i, ml)
        out += ml + 4
    return out


def lz4_content_size(path):
    """Decompressed length of an LZ4 frame file: the frame header's
    content-size field when it has one (ours), else the sum of its blocks'
    lengths (Litestream 0.3.13 writes no content size)."""
    with open(path, "rb") as f:
        head = f.read(14)
        if len(head) < 7:
            raise BenchError(f"{path}: short lz4 frame header")
        magic, flg = struct.unpack_from("<IB", head)
        if magic != LZ4_MAGIC:
            raise BenchError(f"{path}: not an lz4 frame (magic {magic:#x})")
        if flg & 0x08:
            if len(head) < 14:
                raise BenchError(f"{path}: short lz4 frame header")
            return struct.unpack_from("<Q", head, 6)[0]
        f.seek(0)
        data = f.read()
    total, pos = 0, 0
    while pos + 4 <= len(data):  # frames, possibly more than one
        magic = struct.unpack_from("<I", data, pos)[0]
        if 0x184D2A50 <= magic <= 0x184D2A5F:  # skippable frame
            pos += 8 + struct.unpack_from("<I", data, pos + 4)[0]
            continue
        if magic != LZ4_MAGIC:
            raise BenchError(f"{path}: not an lz4 frame at {pos} (magic {magic:#x})")
        flg = data[pos + 4]
        hp = pos + 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0) + 1
        while True:
            if hp + 4 > len(data):
                raise BenchError(f"{path}: truncated lz4 frame")
            bs = struct.unpack_from("<I", data, hp)[0]
            hp += 4
            if bs == 0:  # EndMark
                break
            n = bs & 0x7FFFFFFF
            if hp + n > len(data):
                raise BenchError(f"{path}: truncated lz4 block")
            total += n if bs & 0x80000000 else lz4_block_length(data, hp, hp + n)
            hp += n + (4 if flg & 0x10 else 0)
        pos = hp + (4 if flg & 0x04 else 0)
    return total


def parse_segment(name):
    """IIIIIIII_OOOOOOOO.wal.lz4 -> (index, offset), else None."""
    if not name.endswith(".wal.lz4"):
        return None
    stem = name[:-len(".wal.lz4")]
    parts = stem.split("_")
    if len(parts) != 2 or len(parts[0]) != 8:
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        return None


class SegmentIndex:
    """Coverage of the replica's segments, reading each header once. An
    age-encrypted segment (--age) cannot be read without the key: its
    length comes from the sidecar's own record of where each segment ends
    (DB_DIR/.NAME-litestream/generations/GEN/REPLICA.segment-ends, "NAME
    SIZE END" lines), matched by name and stored size; that the object is
    in the replica is what says it was uploaded."""

    def __init__(self, replica, db=None):
        self.replica, self.db = replica, db
        self.sizes = {}

    def size(self, gen, name):
        key = (gen, name)
        n = self.sizes.get(key)
        if n is None:
            path = os.path.join(self.replica, "generations", gen, "wal", name)
            with open(path, "rb") as f:
                encrypted = f.read(len(AGE_MAGIC)) == AGE_MAGIC
            n = self.age_size(gen, name, path) if encrypted else lz4_content_size(path)
            if n is None:
                return 0  # not recorded yet: counts as not there
            self.sizes[key] = n
        return n

    def age_size(self, gen, name, path):
        ends = os.path.join(shadow_meta(self.db), "generations", gen, f"{AGE_REPLICA}.segment-ends")
        stored, start = os.path.getsize(path), parse_segment(name)[1]
        try:
            with open(ends) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[0] == name and int(parts[1]) == stored:
                        return int(parts[2]) - start
        except FileNotFoundError:
            pass
        return None

    def coverage(self, gen, index):
        d = os.path.join(self.replica, "generations", gen, "wal")
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return 0
        best = 0
        for name in names:
            pos = parse_segment(name)
            if pos is None or pos[0] != index:
                continue
            best = max(best, pos[1] + self.size(gen, name))
        return best


def replica_contents(replica, segs):
    """WAL bytes in segments, their count, the distinct WAL indexes among their
    names, generations, snapshots and their bytes."""
    r = dict(wal_bytes=0, segments=0, wal_indexes=0, generations=0, snapshots=0, snapshot_bytes=0)
    gdir = os.path.join(replica, "generations")
    gens = sorted(os.listdir(gdir)) if os.path.isdir(gdir) else []
    r["generations"] = len(gens)
    indexes = set()
    for gen in gens:
        d = os.path.join(gdir, gen, "wal")
        for name in os.listdir(d) if os.path.isdir(d) else []:
            pos = parse_segment(name)
            if pos is not None:
                r["wal_bytes"] += segs.size(gen, name)
                r["segments"] += 1
                indexes.add((gen, pos[0]))
        d = os.path.join(gdir, gen, "snapshots")
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if name.endswith(".snapshot.lz4"):
                with open(os.path.join(d, name), "rb") as f:
                    encrypted = f.read(len(AGE_MAGIC)) == AGE_MAGIC
                # An encrypted snapshot's size is not known without its key.
                if not encrypted:
                    r["snapshot_bytes"] += lz4_content_size(os.path.join(d, name))
                r["snapshots"] += 1
    r["wal_indexes"] = len(indexes)
    return r


def shadow_meta(db):
    return os.path.join(os.path.dirname(db), "." + os.path.basename(db) + "-litestream")


def shadow_position(db):
    """(generation, newest shadow index, its size) from DB_DIR/.NAME-litestream;
    (generation, 0, 0) for a generation with no shadow WAL file yet (ours makes
    none before the application's first write); None without a generation."""
    meta = shadow_meta(db)
    try:
        with open(os.path.join(meta, "generation")) as f:
            gen = f.read().strip()
    except FileNotFoundError:
        return None
    if not gen:
        return None
    wdir = os.path.join(meta, "generations", gen, "wal")
    for _ in range(3):  # Litestream 0.3.13 removes shadow files it has shipped
        try:
            idxs = [int(n[:8], 16) for n in os.listdir(wdir) if n.endswith(".wal") and len(n) == 12]
        except (FileNotFoundError, ValueError):
            return gen, 0, 0
        if not idxs:
            return gen, 0, 0
        idx = max(idxs)
        try:
            return gen, idx, os.stat(os.path.join(wdir, f"{idx:08x}.wal")).st_size
        except FileNotFoundError:
            continue
    return None


def shadow_indexes(db):
    """The (generation, index) pairs of the shadow WAL files present now."""
    gdir = os.path.join(shadow_meta(db), "generations")
    out = set()
    try:
        gens = os.listdir(gdir)
    except FileNotFoundError:
        return out
    for gen in gens:
        try:
            names = os.listdir(os.path.join(gdir, gen, "wal"))
        except FileNotFoundError:
            continue
        for n in names:
            if n.endswith(".wal") and len(n) == 12:
                try:
                    out.add((gen, int(n[:8], 16)))
                except ValueError:
                    pass
    return out


def wal_salts(db):
    try:
        with open(db + "-wal", "rb") as f:
            hdr = f.read(32)
    except FileNotFoundError:
        return None
    return hdr[12:24] if len(hdr) == 32 else None  # checkpoint seq, salt-1, salt-2


def percentile(sorted_vals, q):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, -(-q * len(sorted_vals) // 100) - 1))
    return sorted_vals[int(k)]


class WalSampler(threading.Thread):
    """Peak size of DB-wal per phase, sampled every few ms; also the distinct
    WAL header salts seen (one per restart of the WAL) and the distinct shadow
    WAL indexes present in DB_DIR/.NAME-litestream (listed at each sample)."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db = db
        self.wal = db + "-wal"
        self.phase = None
        self.peak = {}
        self.samples = {}
        self.salts = set()
        self.shadow = set()
        self.stop_evt = threading.Event()

    def run(self):
        while not self.stop_evt.is_set():
            ph = self.phase
            if ph is not None:
                try:
                    n = os.stat(self.wal).st_size
                except FileNotFoundError:
                    n = 0
                self.peak[ph] = max(self.peak.get(ph, 0), n)
                self.samples[ph] = self.samples.get(ph, 0) + 1
                s = wal_salts(self.db)
                if s is not None:
                    self.salts.add(s)
                self.shadow |= shadow_indexes(self.db)
            time.sleep(WAL_SAMPLE_S)

    def stop(self):
        self.stop_evt.set()
        self.join()


class Writer:
    def __init__(self, mode, db, params):
        self.proc = subprocess.Popen(
            [PYTHON, os.path.abspath(__file__), "_writer", mode, db, json.dumps(params)],
            stdin=subprocess.PIPE if mode == "lag" else subprocess.DEVNULL,
            stdout=subprocess.PIPE, text=True, bufsize=1)

    def event(self, want=None):
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            raise BenchError(f"writer ended unexpectedly (exit {rc})")
        ev = json.loads(line)
        if want is not None and ev.get("event") != want:
            raise BenchError(f"writer: expected {want}, got {ev}")
        return ev

    def send(self, s):
        self.proc.stdin.write(s + "\n")
        self.proc.stdin.flush()

    def finish(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        rc = self.proc.wait(timeout=120)
        if rc != 0:
            raise BenchError(f"writer exited {rc}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


AGE_REPLICA = "file"  # the replica's name in --age's configuration (URL mode's name too)


class AgeBin(str):
    """Our binary's path, run with an age-encrypted replica: the sidecar
    gets a configuration with age-recipients, restore one with
    age-identities (key made by age-keygen)."""

    def __new__(cls, path, key_dir):
        self = super().__new__(cls, path)
        self.key_path = os.path.join(key_dir, "age-key.txt")
        subprocess.run(["age-keygen", "-o", self.key_path], check=True, capture_output=True)
        self.recipient = subprocess.run(["age-keygen", "-y", self.key_path], check=True,
                                        capture_output=True, text=True).stdout.strip()
        return self

    def conf(self, path, db, replica, reading):
        key = (f"age-identities = {self.key_path}" if reading
               else f"age-recipients = {self.recipient}")
        with open(path, "w") as f:
            f.write(f"[db app]\npath = {db}\n[replica {AGE_REPLICA}]\ndb = app\ntype = file\n"
                    f"path = {replica}\n{key}\n")
        return path


class Sidecar:
    """`BINARY replicate DB file://REPLICA`, optionally under strace -c (then
    self.pid is the traced sidecar, a child of strace)."""

    def __init__(self, binary, db, replica, log_path, strace_out=None):
        self.db, self.replica, self.log_path = db, replica, log_path
        self.log = open(log_path, "wb")
        cmd = [binary, "replicate", db, "file://" + replica]
        if isinstance(binary, AgeBin):
            cmd = [binary, "replicate", "-config",
                   binary.conf(log_path + ".conf", db, replica, reading=False)]
        if strace_out:
            cmd = ["strace", "-f", "--seccomp-bpf", "-e", "trace=" + ",".join(FSYNC_CALLS),
                   "-c", "-o", strace_out] + cmd
        self.t_start = now()
        # Its own process group, so that kill() also reaches any children
        # (strace's tracee, a wrapper script around the binary, for instance).
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        if strace_out:
            self.pid = self._traced_child(binary)

    def _traced_child(self, binary):
        """The child of strace that runs the binary (strace forks short-lived
        test children of its own first)."""
        deadline = now() + 10
        path = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        want = os.path.realpath(binary)
        while now() < deadline:
            self.check_alive()
            try:
                with open(path) as f:
                    kids = f.read().split()
            except FileNotFoundError:
                kids = []
            for kid in kids:
                try:
                    if os.readlink(f"/proc/{kid}/exe") == want:
                        return int(kid)
                except OSError:
                    pass
            time.sleep(0.002)
        self.kill()
        raise BenchError("strace did not start the sidecar")

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise BenchError(f"sidecar exited early with {self.proc.returncode}\n{self.log_tail()}")

    def wait_ready(self):
        """Ready = a snapshot exists in the replica. (Our sidecar makes no
        shadow WAL file before the application's first write.)"""
        deadline = now() + READY_TIMEOUT_S
        gdir = os.path.join(self.replica, "generations")
        while now() < deadline:
            self.check_alive()
            if os.path.isdir(gdir):
                for gen in os.listdir(gdir):
                    sdir = os.path.join(gdir, gen, "snapshots")
                    if os.path.isdir(sdir) and any(n.endswith(".snapshot.lz4") for n in os.listdir(sdir)):
                        return
            time.sleep(0.01)
        raise BenchError(f"sidecar not ready after {READY_TIMEOUT_S:.0f} s\n{self.log_tail()}")

    def wait_caught_up(self, segs):
        """Until the replica covers the newest shadow WAL and that shadow WAL
        has not changed for CAUGHT_UP_STABLE_S. Returns when it was first
        seen covered."""
        deadline = now() + DRAIN_TIMEOUT_S
        last = first = None
        while now() < deadline:
            self.check_alive()
            pos = shadow_position(self.db)
            if pos is not None and segs.coverage(pos[0], pos[1]) >= pos[2]:
                if pos != last:
                    last, first = pos, now()
                elif now() - first >= CAUGHT_UP_STABLE_S:
                    return first
                time.sleep(0.05)
                continue
            last = None
            time.sleep(0.01)
        raise BenchError(f"replica did not catch up within {DRAIN_TIMEOUT_S:.0f} s\n{self.log_tail()}")

    def usage(self):
        """CPU seconds (utime+stime, all threads) and VmHWM in KiB."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / tck  # fields 14, 15 of stat(5)
        hwm = rss = None
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return cpu, hwm, rss

    def stop(self, check=True):
        """SIGTERM (to the sidecar itself, not strace); returns the exit status
        (strace exits with its tracee's). Non-zero is an error when check."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"sidecar did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM")
        self.t_stop = now()
        self.log.close()
        if rc != 0 and check:
            raise BenchError(f"sidecar exited {rc} after SIGTERM\n{self.log_tail()}")
        return rc

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def log_tail(self, n=20):
        try:
            if not self.log.closed:
                self.log.flush()
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("  sidecar: " + l for l in lines[-n:])

    def log_problems(self):
        with open(self.log_path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        return [l for l in lines if " WARN " in l or " ERROR " in l]


def parse_strace_counts(path):
    """{syscall: calls} from an `strace -c` summary."""
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[-1] in FSYNC_CALLS:
                counts[parts[-1]] = int(parts[3])
    return counts


# ------------------------------------------------------------- phases ----

def run_restore(binary, replica, out):
    cmd = [binary, "restore", "-o", out, "file://" + replica]
    if isinstance(binary, AgeBin):
        # Restore by configuration; the database's path need not exist.
        src = out + ".source.db"
        cmd = [binary, "restore", "-config", binary.conf(out + ".conf", src, replica, reading=True),
               "-o", out, src]
    t0 = now()
    r = subprocess.run(cmd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    restore_s = now() - t0
    if r.returncode != 0:
        raise BenchError(f"restore exited {r.returncode}:\n{r.stdout}")
    return restore_s


def verify_restore(binary, replica, out, expected):
    restore_s = run_restore(binary, replica, out)
    conn = sqlite3.connect(out)
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        got = db_summary(conn)
    finally:
        conn.close()
    if check != "ok":
        raise BenchError(f"restored database fails quick_check: {check}")
    if got != expected:
        raise BenchError(f"REPLICA IS WRONG: restored {got}, source {expected}")
    return restore_s, got


def interop(others, replica, work, expected):
    """Each other binary restores this replica: {label: "ok" or the error}."""
    res = {}
    for i, (label, obin) in enumerate(others):
        try:
            verify_restore(obin, replica, os.path.join(work, f"interop-{i}.db"), expected)
            res[label] = "ok"
        except BenchError as e:
            res[label] = "failed: " + " ".join(str(e).split())[:300]
    return res


def run_load(work, binary, params, with_sidecar, others=()):
    """Workloads 1 and 2 on a fresh database; returns the figures."""
    db = os.path.join(work, "app.db")
    replica = os.path.join(work, "replica")
    create_db(db)
    res = {}
    side = writer = None
    sampler = WalSampler(db)
    try:
        if with_sidecar:
            side = Sidecar(binary, db, replica, os.path.join(work, "litestream.log"))
            side.wait_ready()
        sampler.start()
        writer = Writer("load", db, params)
        res["settings"] = writer.event("ready")["settings"]
        for phase in ("single", "bulk"):
            writer.event("phase")
            sampler.phase = phase
            ev = writer.event("done")
            sampler.phase = None
            res[phase + "_s"] = ev["seconds"]
            if side is not None:
                side.check_alive()
        t_end = now()
        res["summary"] = writer.event("summary")["summary"]
        writer.finish()
        sampler.stop()
        res["wal_peak_single"] = sampler.peak.get("single", 0)
        res["wal_peak_bulk"] = sampler.peak.get("bulk", 0)
        res["wal_samples_bulk"] = sampler.samples.get("bulk", 0)
        res["wal_restarts_seen"] = len(sampler.salts)
        res["shadow_indexes_seen"] = len(sampler.shadow)
        if side is None:
            return res
        segs = SegmentIndex(replica, db)
        res["drain_s"] = side.wait_caught_up(segs) - t_end
        cpu, hwm, rss = side.usage()
        res["sidecar_cpu_s"] = cpu
        res["sidecar_hwm_kib"] = hwm
        res["sidecar_rss_kib"] = rss
        side.stop()
        res["sidecar_exit"] = 0
        res["sidecar_problems"] = side.log_problems()
        rep = replica_contents(replica, segs)
        res["wal_shipped"] = rep["wal_bytes"]
        res["replica"] = rep
        restore_s, got = verify_restore(binary, replica, os.path.join(work, "restored.db"),
                                        res["summary"])
        res["restore_s"] = restore_s
        res["restored"] = got
        res["interop"] = interop(others, replica, work, res["summary"])
        return res
    finally:
        if sampler.is_alive():
            sampler.stop()
        if writer is not None:
            writer.kill()
        if side is not None:
            side.kill()


def run_lag(work, binary, params):
    """Commit one row, wait until a segment covers it, pause, repeat."""
    db = os.path.join(work, "app.db")
    replica = os.path.join(work, "replica")
    create_db(db)
    side = Sidecar(binary, db, replica, os.path.join(work, "litestream.log"))
    writer = None
    lags, skipped, timeouts = [], 0, 0
    try:
        side.wait_ready()
        segs = SegmentIndex(replica, db)
        writer = Writer("lag", db, params)
        writer.event("ready")
        prev_size = None
        for _ in range(params["lag_samples"]):
            before = shadow_position(side.db)  # (GEN, 0, 0) before the first write
            salts_before = wal_salts(db)
            writer.send("go")
            ev = writer.event("commit")
            t_commit, size = ev["t"], ev["wal_size"]
            now_pos = shadow_position(side.db)
            gen, idx = now_pos[:2] if now_pos else (None, None)
            # The WAL restarted (new index, new salts, or a file that stopped
            # growing because frames are written from its start again):
            # the file size no longer marks the commit's end. A WAL that had
            # no header yet was written from its start: its size does.
            restarted = (before is None or now_pos is None or before[:2] != (gen, idx)
                         or (salts_before is not None and wal_salts(db) != salts_before)
                         or (prev_size is not None and size <= prev_size))
            prev_size = size
            if restarted:
                skipped += 1
                time.sleep(params["lag_pause_ms"] / 1000)
                continue
            deadline = t_commit + LAG_TIMEOUT_S
            while True:
                if segs.coverage(gen, idx) >= size:
                    lags.append((now() - t_commit) * 1000)
                    break
                pos = shadow_position(side.db)
                if pos is not None and pos[:2] != (gen, idx):
                    skipped += 1
                    break
                if now() > deadline:
                    timeouts += 1
                    lags.append(LAG_TIMEOUT_S * 1000)
                    break
                time.sleep(0.0005)
            side.check_alive()
            time.sleep(params["lag_pause_ms"] / 1000)
        writer.send("quit")
        summary = writer.event("summary")["summary"]
        writer.finish()
        side.wait_caught_up(segs)
        side.stop()
        problems = side.log_problems()
        restore_s, _ = verify_restore(binary, replica, os.path.join(work, "restored.db"), summary)
    finally:
        if writer is not None:
            writer.kill()
        side.kill()
    lags.sort()
    return {
        "samples": len(lags), "skipped": skipped, "timeouts": timeouts,
        "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99),
        "max_ms": lags[-1] if lags else None,
        "mean_ms": statistics.fmean(lags) if lags else None,
        "rows": summary["t_rows"], "restore_s": restore_s, "sidecar_problems": problems,
        "lags_ms": lags,
    }


def pool_lags(rounds):
    """One lag result from several rounds of run_lag: their samples pooled."""
    lags = sorted(x for r in rounds for x in r["lags_ms"])
    out = dict(rounds[-1])
    out.update({
        "samples": len(lags), "skipped": sum(r["skipped"] for r in rounds),
        "timeouts": sum(r["timeouts"] for r in rounds),
        "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99),
        "max_ms": lags[-1] if lags else None,
        "mean_ms": statistics.fmean(lags) if lags else None,
        "sidecar_problems": [p for r in rounds for p in r["sidecar_problems"]], "lags_ms": lags,
    })
    return out


def run_fsync(work, binary, params):
    """Workload 1 alone with the sidecar under strace -c (fsync, fdatasync,
    sync_file_range of all its threads). fsyncs/s = all of its calls / the
    time from the writer's start until the replica had everything."""
    db = os.path.join(work, "app.db")
    replica = os.path.join(work, "replica")
    out = os.path.join(work, "strace.txt")
    create_db(db)
    p = dict(params, bulk_mib=0)
    side = Sidecar(binary, db, replica, os.path.join(work, "litestream.log"), strace_out=out)
    writer = None
    try:
        side.wait_ready()
        writer = Writer("load", db, p)
        writer.event("ready")
        writer.event("phase")
        t0 = now()
        single_s = writer.event("done")["seconds"]
        writer.event("phase")
        writer.event("done")
        summary = writer.event("summary")["summary"]
        writer.finish()
        t_caught_up = side.wait_caught_up(SegmentIndex(replica, db))
        side.stop()
        verify_restore(binary, replica, os.path.join(work, "restored.db"), summary)
    finally:
        if writer is not None:
            writer.kill()
        side.kill()
    counts = parse_strace_counts(out)
    total = sum(counts.values())
    dur = t_caught_up - t0
    return {"calls": counts, "total": total, "seconds": dur, "per_s": total / dur,
            "life_s": side.t_stop - side.t_start, "writer_single_s": single_s}


def run_bursts(work, binary, params, others=()):
    """busy_timeout 0: 5 MiB transactions alternating with 50 single-row
    commits for bursts_s; BUSY count, WAL peak, WAL indexes; restore check."""
    db = os.path.join(work, "app.db")
    replica = os.path.join(work, "replica")
    create_db(db)
    res = {}
    side = writer = None
    sampler = WalSampler(db)
    try:
        if binary is not None:
            side = Sidecar(binary, db, replica, os.path.join(work, "litestream.log"))
            side.wait_ready()
        sampler.start()
        writer = Writer("bursts", db, params)
        res["settings"] = writer.event("ready")["settings"]
        writer.event("phase")
        sampler.phase = "bursts"
        ev = writer.event("done")
        sampler.phase = None
        res.update(seconds=ev["seconds"], busy=ev["busy"], bursts=ev["bursts"], singles=ev["singles"])
        res["summary"] = writer.event("summary")["summary"]
        writer.finish()
        sampler.stop()
        res["wal_peak"] = sampler.peak.get("bursts", 0)
        res["wal_restarts_seen"] = len(sampler.salts)
        res["shadow_indexes_seen"] = len(sampler.shadow) if side is not None else None
        if side is None:
            return res
        segs = SegmentIndex(replica, db)
        side.wait_caught_up(segs)
        cpu, hwm, _ = side.usage()
        res["sidecar_cpu_s"], res["sidecar_hwm_kib"] = cpu, hwm
        side.stop()
        res["sidecar_problems"] = side.log_problems()
        res["replica"] = replica_contents(replica, segs)
        res["restore_s"], _ = verify_restore(binary, replica, os.path.join(work, "restored.db"),
                                             res["summary"])
        res["interop"] = interop(others, replica, work, res["summary"])
        return res
    finally:
        if sampler.is_alive():
            sampler.stop()
        if writer is not None:
            writer.kill()
        if side is not None:
            side.kill()


def sqlite_dump(db):
    r = subprocess.run(["sqlite3", db, ".dump"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise BenchError(f"sqlite3 {db} .dump exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def run_speedtest(work, binary, speedtest, runs):
    """speedtest1 (no busy timeout) beside the sidecar, on a fresh database each
    run; then SIGTERM, restore, and `.dump` of source and restored compared."""
    res = {"runs": runs, "clean": 0, "locked": 0, "sidecar_exit0": 0, "restored": 0,
           "dumps_equal": 0, "seconds": [], "problems": []}
    for i in range(runs):
        d = os.path.join(work, f"run{i}")
        os.mkdir(d)
        db = os.path.join(d, "speedtest1.db")
        replica = os.path.join(d, "replica")
        create_empty_db(db)
        side = Sidecar(binary, db, replica, os.path.join(d, "litestream.log"))
        try:
            side.wait_ready()
            t0 = now()
            try:
                r = subprocess.run([speedtest, "--journal", "wal", "--size", str(SPEEDTEST_SIZE), db],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=SPEEDTEST_TIMEOUT_S)
                rc, out = r.returncode, r.stdout.decode(errors="replace")
            except subprocess.TimeoutExpired as e:
                rc, out = "timeout", (e.output or b"").decode(errors="replace")
            res["seconds"].append(now() - t0)
            locked = "database is locked" in out
            res["locked"] += locked
            if rc == 0 and not locked:
                res["clean"] += 1
            else:
                last = [l for l in out.splitlines() if l.strip()][-1:] or [""]
                res["problems"].append(f"run {i + 1}: speedtest1 exit {rc}"
                                       f"{', database is locked' if locked else ''}: {last[0].strip()[:200]}")
            src = side.alive()
            rc_side = side.stop(check=False) if src else side.proc.returncode
            if rc_side == 0:
                res["sidecar_exit0"] += 1
            else:
                res["problems"].append(f"run {i + 1}: sidecar exit {rc_side}"
                                       f"{' (had died before SIGTERM)' if not src else ''}"
                                       f"\n{side.log_tail(5)}")
            out_db = os.path.join(d, "restored.db")
            try:
                run_restore(binary, replica, out_db)
                res["restored"] += 1
                if sqlite_dump(out_db) == sqlite_dump(db):
                    res["dumps_equal"] += 1
                else:
                    res["problems"].append(f"run {i + 1}: .dump of the restored database differs")
            except BenchError as e:
                res["problems"].append(f"run {i + 1}: {' '.join(str(e).split())[:300]}")
            res["problems"] += [f"run {i + 1}: sidecar: {l}" for l in side.log_problems()[:3]]
        finally:
            side.kill()
        shutil.rmtree(d, ignore_errors=True)
    return res


# -------------------------------------------------------------- report ----

def fs_of(path):
    path = os.path.realpath(path)
    best = ("?", "?", "?")
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            mnt = mnt.replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
                best = (dev, mnt, fstype)
    return best


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def bin_version(binary):
    return subprocess.run([binary, "version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True).stdout.strip()


def machine_header(bins, tmp_root, params, quick):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    dev, mnt, fstype = fs_of(tmp_root)
    if fstype == "ext4":  # fsync costs differ a lot with and without a journal
        base = os.path.basename(dev)
        try:
            journal = any(n.startswith(base + "-") for n in os.listdir("/proc/fs/jbd2"))
        except OSError:
            journal = False
        fstype += " (journal)" if journal else " (no journal)"
    info = {
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "mem": mem,
        "kernel": platform.release(), "tmp": tmp_root, "fs": fstype, "fs_dev": dev,
        "fs_mount": mnt, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "litestream": bins[0]["version"], "loadavg": loadavg(),
    }
    print(f"litestream replication benchmark{' (--quick)' if quick else ''}")
    print(f"  machine : nproc {info['nproc']}, {cpu}, {mem} RAM, Linux {info['kernel']}")
    print(f"  load    : {loadavg()} (1/5/15 min load average at start; other work skews the figures)")
    print(f"  temp dir: {tmp_root} on {fstype} ({dev} mounted at {mnt})")
    for b in bins:
        print(f"  software: {b['label']:>8} = {b['path']} ({b['version']})")
    print(f"  measurer: {sys.executable} {info['python']}, SQLite {info['sqlite']}")
    blobs = params["bulk_mib"] * 1024 // params["blob_kib"]
    print(f"  workload: 1) {params['single_txns']} single-row transactions "
          f"({params['row_bytes']}-byte blob each); 2) bulk load {params['bulk_mib']} MiB = "
          f"{blobs} x {params['blob_kib']} KiB random blobs, {params['txn_mib']} MiB per transaction;"
          f" lag: {params['lag_samples']} single-row commits, {params['lag_pause_ms']} ms apart;"
          f" fsyncs: workload 1 again, sidecar under strace; bursts: {params['bursts_s']} s of"
          f" {params['burst_blobs']} x {params['blob_kib']} KiB in one transaction + "
          f"{params['burst_singles']} single-row commits, busy_timeout 0")
    sys.stdout.flush()
    return info


def fmt(v, spec=".3f", unit=""):
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def rnd(v, n):
    return None if v is None else round(v, n)


def binary_figures(base, b):
    """The flat per-binary figures (the JSON keys), None where a phase failed."""
    side, lag, fs, bu = b.get("side"), b.get("lag"), b.get("fsync"), b.get("bursts")
    f = {"litestream": b["version"], "bin": b["path"]}
    if side:
        rep = side["replica"]
        shipped_mib = side["wal_shipped"] / MiB
        cpu100 = side["sidecar_cpu_s"] / (shipped_mib / 100) if shipped_mib else None
        f.update({
            "sidecar_single_s": round(side["single_s"], 4), "sidecar_bulk_s": round(side["bulk_s"], 4),
            "ratio_single": round(side["single_s"] / base["single_s"], 4),
            "ratio_bulk": round(side["bulk_s"] / base["bulk_s"], 4),
            "sidecar_cpu_s": round(side["sidecar_cpu_s"], 3), "wal_shipped_bytes": side["wal_shipped"],
            "sidecar_cpu_s_per_100mib": rnd(cpu100, 4),
            "replica_generations": rep["generations"], "replica_snapshots": rep["snapshots"],
            "replica_snapshot_bytes": rep["snapshot_bytes"],
            "replica_segments": rep["segments"], "replica_wal_indexes": rep["wal_indexes"],
            "shadow_wal_indexes_seen": side["shadow_indexes_seen"],
            "sidecar_peak_rss_mib": round(side["sidecar_hwm_kib"] / 1024, 2),
            "wal_peak_bulk_mib": round(side["wal_peak_bulk"] / MiB, 2),
            "wal_peak_single_mib": round(side["wal_peak_single"] / MiB, 2),
            "drain_s": round(side["drain_s"], 3), "restore_s": round(side["restore_s"], 3),
            "restored_rows_t": side["restored"]["t_rows"],
            "restored_rows_blobs": side["restored"]["blobs_rows"],
            "sidecar_exit": side["sidecar_exit"], "interop_restore": side["interop"],
        })
    if lag:
        f.update({"lag_p50_ms": rnd(lag["p50_ms"], 2), "lag_p99_ms": rnd(lag["p99_ms"], 2),
                  "lag_max_ms": rnd(lag["max_ms"], 2), "lag_samples": lag["samples"],
                  "lag_skipped": lag["skipped"], "lag_timeouts": lag["timeouts"]})
    if side or lag:
        f["sidecar_problems"] = len((side or {}).get("sidecar_problems", [])
                                    + (lag or {}).get("sidecar_problems", []))
    if fs:
        f.update({"fsyncs": fs["total"], "fsync_calls": fs["calls"],
                  "fsync_run_s": round(fs["seconds"], 3), "fsyncs_per_s": round(fs["per_s"], 2),
                  "fsync_sidecar_life_s": round(fs["life_s"], 3)})
    if bu:
        f.update({"bursts_wal_peak_mib": round(bu["wal_peak"] / MiB, 2),
                  "bursts_shadow_wal_indexes_seen": bu["shadow_indexes_seen"],
                  "bursts_wal_restarts_seen": bu["wal_restarts_seen"],
                  "bursts_busy": bu["busy"], "bursts_done": bu["bursts"],
                  "bursts_single_commits": bu["singles"],
                  "bursts_interop_restore": bu["interop"]})
    st = b.get("speedtest")
    if st:
        f.update({"speedtest1_runs": st["runs"], "speedtest1_clean": st["clean"],
                  "speedtest1_locked": st["locked"], "speedtest1_sidecar_exit0": st["sidecar_exit0"],
                  "speedtest1_dumps_equal": st["dumps_equal"]})
    f["errors"] = b["errors"]
    return f


# Figures compared between binaries: (JSON key, column title, format).
COMPARED = [
    ("sidecar_single_s", "single s", ".3f"), ("ratio_single", "x single", ".3f"),
    ("sidecar_bulk_s", "bulk s", ".3f"), ("ratio_bulk", "x bulk", ".3f"),
    ("lag_p50_ms", "lag p50", ".1f"), ("lag_p99_ms", "p99", ".1f"), ("lag_max_ms", "max ms", ".1f"),
    ("sidecar_cpu_s_per_100mib", "CPU/100MiB", ".3f"), ("sidecar_peak_rss_mib", "VmHWM MiB", ".1f"),
    ("wal_peak_bulk_mib", "WAL peak MiB", ".1f"), ("replica_wal_indexes", "WAL idx", "d"),
    ("replica_segments", "segments", "d"), ("fsyncs_per_s", "fsync/s", ".1f"),
]


def print_table(rows, first_w):
    widths = [max(len(t), 6) for _, t, _ in COMPARED]
    print("  " + f"{'':<{first_w}}" + " ".join(f"{t:>{w}}" for (_, t, _), w in zip(COMPARED, widths)))
    for name, cells in rows:
        print("  " + f"{name:<{first_w}}" + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))


def print_binary_results(label, base, b, quick):
    side, lag, fs = b.get("side"), b.get("lag"), b.get("fsync")
    ok = lambda c: "ok" if c else "MISSED"
    print(f"\nResults: {label} ({b['version']}, {b['path']})")
    if b["errors"]:
        for e in b["errors"]:
            print(f"  FAILED (reported, not fatal): {e.splitlines()[0]}")
    print(f"  baseline writer wall time : single-row {base['single_s']:.3f} s, bulk {base['bulk_s']:.3f} s")
    if side:
        r1 = side["single_s"] / base["single_s"]
        r2 = side["bulk_s"] / base["bulk_s"]
        shipped_mib = side["wal_shipped"] / MiB
        rep = side["replica"]
        cpu_per_100 = side["sidecar_cpu_s"] / (shipped_mib / 100) if shipped_mib else None
        hwm_mib = side["sidecar_hwm_kib"] / 1024
        print(f"  sidecar  writer wall time : single-row {side['single_s']:.3f} s, bulk {side['bulk_s']:.3f} s")
        print(f"  slowdown (with / without) : single-row {r1:.3f} [{ok(r1 <= 1.05)}: <= 1.05], "
              f"bulk {r2:.3f} [{ok(r2 <= 1.05)}: <= 1.05]")
    if lag:
        print(f"  commit-to-replica lag     : p50 {fmt(lag['p50_ms'], '.1f')} ms, p99 {fmt(lag['p99_ms'], '.1f')} ms"
              f" [{ok(lag['p99_ms'] is not None and lag['p99_ms'] < 50)}: p99 < 50 ms]; max "
              f"{fmt(lag['max_ms'], '.1f')} ms, mean {fmt(lag['mean_ms'], '.1f')} ms; {lag['samples']} samples, "
              f"{lag['skipped']} skipped (WAL restart), {lag['timeouts']} timeouts (> {LAG_TIMEOUT_S:.0f} s)")
    if side:
        print(f"  sidecar CPU               : {side['sidecar_cpu_s']:.2f} s for {shipped_mib:.1f} MiB of WAL "
              f"shipped in {rep['segments']} segments = {fmt(cpu_per_100, '.3f')} s per 100 MiB")
        print(f"  replica contents          : {rep['generations']} generation(s), {rep['snapshots']} "
              f"snapshot(s) holding {rep['snapshot_bytes'] / MiB:.1f} MiB (1 generation and 1 snapshot "
              f"expected on a quiet run); {rep['segments']} segments over {rep['wal_indexes']} WAL "
              f"indexes (distinct indexes in the segment names); {side['shadow_indexes_seen']} shadow "
              f"WAL indexes seen by the sampler, {side['wal_restarts_seen']} WAL header salts "
              f"({base['wal_restarts_seen']} baseline)")
        print(f"  sidecar peak RSS (VmHWM)  : {hwm_mib:.1f} MiB [{ok(hwm_mib < 16)}: < 16 MiB] "
              f"(VmRSS at stop {side['sidecar_rss_kib'] / 1024:.1f} MiB)")
        print(f"  WAL peak size during bulk : {side['wal_peak_bulk'] / MiB:.1f} MiB with sidecar, "
              f"{base['wal_peak_bulk'] / MiB:.1f} MiB baseline ({side['wal_samples_bulk']} samples every "
              f"{WAL_SAMPLE_S * 1000:.0f} ms); during single-row: {side['wal_peak_single'] / MiB:.1f} MiB "
              f"with, {base['wal_peak_single'] / MiB:.1f} MiB without")
        print(f"  replica drain after writer: {side['drain_s']:.2f} s; sidecar exit on SIGTERM: "
              f"{side['sidecar_exit']}")
        rs = side["restored"]
        lagr = (f"; lag-phase replica restored in {lag['restore_s']:.2f} s with {lag['rows']} rows, "
                f"identical") if lag else ""
        print(f"  restore                   : {side['restore_s']:.2f} s; t {rs['t_rows']} rows, blobs "
              f"{rs['blobs_rows']} rows, contents identical to the source (sha256){lagr}")
    if fs:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(fs["calls"].items())) or "none"
        print(f"  sidecar fsyncs            : {fs['total']} ({calls}) / {fs['seconds']:.2f} s = "
              f"{fs['per_s']:.1f}/s (workload 1 alone, sidecar under strace: writer "
              f"{fs['writer_single_s']:.3f} s + drain; whole sidecar life {fs['life_s']:.2f} s)")
    problems = (side or {}).get("sidecar_problems", []) + (lag or {}).get("sidecar_problems", [])
    print(f"  sidecar WARN/ERROR lines  : {len(problems)}")
    for line in problems[:10]:
        print("    " + line)
    if not quick and lag and lag["samples"] < MIN_LAG_SAMPLES_FULL:
        print(f"WARNING: only {lag['samples']} lag samples (< {MIN_LAG_SAMPLES_FULL})")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_writer":
        return writer_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description="litestream replication benchmark (prints figures)")
    ap.add_argument("--bin", required=True, help="path to the litestream binary")
    ap.add_argument("--compare", action="append", default=[], metavar="BIN",
                    help="another litestream binary to run the same sidecar phases with (repeatable)")
    ap.add_argument("--speedtest1", default=None, metavar="PATH",
                    help="run SQLite's speedtest1 beside each sidecar (a phase; off by default)")
    ap.add_argument("--quick", action="store_true", help="about 10x smaller workload (smoke run)")
    ap.add_argument("--tmpdir", default=None, help="where to make temp dirs (default: $TMPDIR or /tmp)")
    ap.add_argument("--lag-rounds", type=int, default=1, metavar="N",
                    help="run the lag phase N times, the binaries taking turns, and pool the samples")
    ap.add_argument("--age", action="store_true",
                    help="also run our sidecar phases with an age-encrypted replica (needs age-keygen)")
    args = ap.parse_args()
    if args.age and shutil.which("age-keygen") is None:
        print("error: --age needs age-keygen (Debian: apt-get install -y age)", file=sys.stderr)
        return 2
    paths = [os.path.abspath(args.bin)] + [os.path.abspath(c) for c in args.compare]
    if args.speedtest1:
        args.speedtest1 = os.path.abspath(args.speedtest1)
    for p in paths + ([args.speedtest1] if args.speedtest1 else []):
        if not os.access(p, os.X_OK):
            print(f"error: {p} is not an executable", file=sys.stderr)
            return 2
    params = QUICK if args.quick else FULL
    have_strace = shutil.which("strace") is not None

    bins = []
    for i, p in enumerate(paths):
        ver = bin_version(p)
        label = "ours" if i == 0 else (ver or f"cmp{i}")
        if any(b["label"] == label for b in bins):
            label = f"{label}#{i}"
        bins.append({"label": label, "path": p, "version": ver, "errors": []})
    ours = bins[0]
    key_dir = tempfile.mkdtemp(prefix="litestream-bench-key-", dir=args.tmpdir) if args.age else None
    if args.age:
        bins.insert(1, {"label": "ours+age", "path": AgeBin(ours["path"], key_dir),
                        "version": ours["version"], "errors": [], "age": True})
    lw = max(12, max(len(b["label"]) for b in bins) + 2)

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # Interrupted runs still stop their processes and remove their temp dirs.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    root = tempfile.mkdtemp(prefix="litestream-bench-", dir=args.tmpdir)
    t_start = now()
    n_phases = 5 + bool(args.speedtest1)
    step = [0]

    def heading(text):
        step[0] += 1
        print(f"\n[{step[0]}/{n_phases}] {text} ...", flush=True)

    def phase(b, key, name, fn):
        """Runs fn(workdir) for binary b; a --compare binary's failure is recorded."""
        d = os.path.join(root, f"{name}-{bins.index(b)}")
        os.mkdir(d)
        try:
            b[key] = fn(d)
        except Exception as e:  # not KeyboardInterrupt
            if b is ours:
                raise
            msg = f"{name}: {e}" if isinstance(e, BenchError) else f"{name}: {type(e).__name__}: {e}"
            b["errors"].append(msg)
            print(f"  {b['label']}: FAILED (reported, not fatal): {msg}", flush=True)
            b[key] = None
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return b[key]

    # An encrypted replica is not restored by the others (they hold no key).
    others_of = lambda b: [] if b.get("age") else [(o["label"], o["path"]) for o in bins
                                                   if o is not b and not o.get("age")]
    try:
        info = machine_header(bins, root, params, args.quick)
        heading("baseline: writer alone")
        d = os.path.join(root, "baseline")
        os.mkdir(d)
        base = run_load(d, None, params, with_sidecar=False)
        shutil.rmtree(d)
        s = base["settings"]
        print(f"  writer settings: journal_mode={s['journal_mode']} synchronous={s['synchronous']}"
              f" (2 = FULL) wal_autocheckpoint={s['wal_autocheckpoint']} page_size={s['page_size']}"
              f" busy timeout 5 s (Python sqlite3 defaults; writer: {PYTHON}"
              f" {s['python']}, SQLite {s['sqlite']})")
        print(f"  single-row: {base['single_s']:.3f} s   bulk: {base['bulk_s']:.3f} s   "
              f"WAL peak during bulk: {base['wal_peak_bulk'] / MiB:.1f} MiB", flush=True)

        heading("with sidecar: litestream replicate DB file:///REPLICA")
        for b in bins:
            side = phase(b, "side", "sidecar",
                         lambda d: run_load(d, b["path"], params, True, others_of(b)))
            if side:
                print(f"  {b['label']:<{lw}} single-row: {side['single_s']:.3f} s   bulk: "
                      f"{side['bulk_s']:.3f} s   WAL peak during bulk: {side['wal_peak_bulk'] / MiB:.1f} MiB",
                      flush=True)
                for olabel, r in side["interop"].items():
                    print(f"  interop {r.split(':')[0]}: {olabel} restore of the replica of "
                          f"{b['label']}{'' if r == 'ok' else ': ' + r}", flush=True)

        heading("commit-to-replica lag" + (f", {args.lag_rounds} rounds taking turns"
                                           if args.lag_rounds > 1 else ""))
        # Rounds take turns between the binaries, so that a drift of the
        # machine (another job's disk writes) falls on all of them alike.
        for r in range(args.lag_rounds):
            for b in bins:
                got = phase(b, "lag_round", "lag", lambda d: run_lag(d, b["path"], params))
                b.setdefault("lag_rounds", []).append(got)
        for b in bins:
            rounds = [x for x in b.pop("lag_rounds", []) if x is not None]
            b["lag"] = lag = pool_lags(rounds) if rounds and len(rounds) == args.lag_rounds else None
            if lag:
                print(f"  {b['label']:<{lw}} p50 {fmt(lag['p50_ms'], '.1f')} ms, p99 "
                      f"{fmt(lag['p99_ms'], '.1f')} ms, {lag['samples']} samples", flush=True)

        heading("sidecar fsyncs: workload 1 with the sidecar under strace -c")
        if not have_strace:
            print("  strace not found (Debian: apt-get install -y strace): fsyncs not counted")
        for b in bins if have_strace else []:
            fs = phase(b, "fsync", "fsync", lambda d: run_fsync(d, b["path"], params))
            if fs:
                print(f"  {b['label']:<{lw}} {fs['total']} calls in {fs['seconds']:.2f} s = "
                      f"{fs['per_s']:.1f}/s", flush=True)

        heading(f"bursts: busy_timeout 0, {params['burst_blobs']} x {params['blob_kib']} KiB in one "
                f"transaction, then {params['burst_singles']} single-row commits, for {params['bursts_s']} s")
        d = os.path.join(root, "bursts-base")
        os.mkdir(d)
        bursts_base = run_bursts(d, None, params)
        shutil.rmtree(d)
        print(f"  {'writer alone':<{lw}} {bursts_base['bursts']} bursts, WAL peak "
              f"{bursts_base['wal_peak'] / MiB:.1f} MiB, BUSY {bursts_base['busy']}", flush=True)
        for b in bins:
            bu = phase(b, "bursts", "bursts", lambda d: run_bursts(d, b["path"], params, others_of(b)))
            if bu:
                print(f"  {b['label']:<{lw}} {bu['bursts']} bursts, WAL peak {bu['wal_peak'] / MiB:.1f} MiB, "
                      f"BUSY {bu['busy']}; restored, identical", flush=True)
                for olabel, r in bu["interop"].items():
                    print(f"  interop {r.split(':')[0]}: {olabel} restore of the bursts replica of "
                          f"{b['label']}{'' if r == 'ok' else ': ' + r}", flush=True)

        if args.speedtest1:
            heading(f"speedtest1 --journal wal --size {SPEEDTEST_SIZE} beside the sidecar, "
                    f"{params['speedtest_runs']} runs")
            for b in bins:
                st = phase(b, "speedtest", "speedtest1",
                           lambda d: run_speedtest(d, b["path"], args.speedtest1, params["speedtest_runs"]))
                if st:
                    print(f"  {b['label']:<{lw}} {st['clean']} of {st['runs']} ran to the end, "
                          f"{st['dumps_equal']} dumps equal", flush=True)
    except BenchError as e:
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}); cleaned up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if key_dir:
            shutil.rmtree(key_dir, ignore_errors=True)

    for b in bins:
        print_binary_results(b["label"], base, b, args.quick)
    figs = {b["label"]: binary_figures(base, b) for b in bins}

    ratios = {}
    if len(bins) > 1:
        print("\nComparison (one row per binary; ratio rows are ours / theirs)")
        rows = [("writer alone", [f"{base['single_s']:.3f}", "", f"{base['bulk_s']:.3f}"]
                 + [""] * (len(COMPARED) - 3))]
        for b in bins:
            f = figs[b["label"]]
            rows.append((b["label"], [fmt(f.get(k), spec) for k, _, spec in COMPARED]))
        for b in bins[1:]:
            rr = {k: rnd(ratio(figs["ours"].get(k), figs[b["label"]].get(k)), 4) for k, _, _ in COMPARED}
            ratios[b["label"]] = rr
            rows.append((f"ours/{b['label']}", [fmt(rr[k], ".3g") for k, _, _ in COMPARED]))
        print_table(rows, lw + 2)
        print("  single s, bulk s: writer wall time with the sidecar; x: with / without. lag in ms."
              " CPU/100MiB: sidecar CPU s per 100 MiB of WAL shipped. WAL peak: largest -wal during"
              " bulk. WAL idx: distinct WAL indexes among the replica's segment names. segments:"
              " segment files in the replica. fsync/s: fsync+fdatasync+sync_file_range of the sidecar"
              " per second from the writer's start until the replica had everything, in the separate"
              " strace run of workload 1.")

    if args.age:
        a, o = figs["ours+age"], figs["ours"]
        print("\nEncryption (ours+age / ours; the target is within 1.10)")
        for k, title in (("sidecar_single_s", "writer single-row s"), ("sidecar_bulk_s", "writer bulk s"),
                         ("lag_p50_ms", "lag p50 ms"), ("lag_p99_ms", "lag p99 ms"),
                         ("sidecar_cpu_s_per_100mib", "sidecar CPU s/100MiB")):
            print(f"  {title:<22} {fmt(o.get(k), '.3f'):>9} -> {fmt(a.get(k), '.3f'):>9}  "
                  f"x{fmt(ratio(a.get(k), o.get(k)), '.3f')}")

    print(f"\nBursts (busy_timeout 0, {params['bursts_s']} s; WAL indexes: distinct shadow WAL files seen"
          f" in DB_DIR/.NAME-litestream; WAL restarts: distinct -wal header salts seen)")
    print(f"  {'':<{lw}} {'WAL peak MiB':>12} {'WAL indexes':>11} {'WAL restarts':>12} {'BUSY':>6} "
          f"{'bursts':>6} {'commits':>7}  restore")
    brows = [("writer alone", bursts_base)] + [(b["label"], b.get("bursts")) for b in bins]
    for name, bu in brows:
        if bu is None:
            print(f"  {name:<{lw}} failed (see above)")
            continue
        rest = "n/a" if bu is bursts_base else "identical"
        print(f"  {name:<{lw}} {bu['wal_peak'] / MiB:>12.1f} {fmt(bu['shadow_indexes_seen'], 'd'):>11} "
              f"{bu['wal_restarts_seen']:>12} {bu['busy']:>6} {bu['bursts']:>6} "
              f"{bu['bursts'] + bu['singles']:>7}  {rest}")

    st_fail = False
    if args.speedtest1:
        print(f"\nspeedtest1 ({args.speedtest1} --journal wal --size {SPEEDTEST_SIZE}; no busy timeout)")
        for b in bins:
            st = b.get("speedtest")
            if st is None:
                print(f"  speedtest1 {b['label']}: failed (see above)")
                continue
            secs = statistics.median(st["seconds"]) if st["seconds"] else None
            print(f"  speedtest1 {b['label']}: {st['clean']} of {st['runs']} ran to the end, "
                  f"{st['dumps_equal']} dumps equal ({st['locked']} with 'database is locked', sidecar "
                  f"exit 0 on SIGTERM {st['sidecar_exit0']} of {st['runs']}, median "
                  f"{fmt(secs, '.2f')} s per run)")
            for p in st["problems"][:8]:
                print("    " + p.replace("\n", "\n    "))
            if b is ours and (st["sidecar_exit0"] < st["runs"] or st["dumps_equal"] < st["runs"]):
                st_fail = True

    if len(bins) > 1:
        print("\nInterop (restore of one binary's replica by another; reported, not fatal)")
        for b in bins:
            for key, what in (("side", "load"), ("bursts", "bursts")):
                for olabel, r in ((b.get(key) or {}).get("interop") or {}).items():
                    print(f"  interop {'ok' if r == 'ok' else 'failed'}: {olabel} restore of the {what} "
                          f"replica of {b['label']}{'' if r == 'ok' else ' (' + r + ')'}")
    print(f"\n  total benchmark time      : {now() - t_start:.1f} s; load average at end {loadavg()}")

    out = {
        "bench": "replicate", "quick": args.quick, "nproc": info["nproc"], "fs": info["fs"],
        "loadavg_start": info["loadavg"], "sqlite": info["sqlite"],
        "synchronous": base["settings"]["synchronous"],
        "single_txns": params["single_txns"], "bulk_mib": params["bulk_mib"],
        "baseline_single_s": round(base["single_s"], 4), "baseline_bulk_s": round(base["bulk_s"], 4),
        "baseline_wal_peak_bulk_mib": round(base["wal_peak_bulk"] / MiB, 2),
        "bursts_s": params["bursts_s"],
        "baseline_bursts_wal_peak_mib": round(bursts_base["wal_peak"] / MiB, 2),
        "baseline_bursts_busy": bursts_base["busy"], "baseline_bursts_done": bursts_base["bursts"],
    }
    out.update(figs["ours"])  # ours, flat, as without --compare
    if len(bins) > 1:
        out["binaries"] = figs
        out["ratios"] = ratios
    print(json.dumps(out))
    if st_fail:
        print("BENCHMARK FAILED: speedtest1: our sidecar exited non-zero or a restored .dump differed",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
