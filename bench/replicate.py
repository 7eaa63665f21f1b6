#!/usr/bin/python3
"""Replication benchmark for litestream (see bench/README.md).

    python3 bench/replicate.py --bin PATH/TO/litestream [--quick] [--tmpdir DIR]

Runs a fixed, deterministic workload twice, on a fresh database each time:
once without the sidecar (baseline) and once with `litestream replicate DB
file:///REPLICA` (default settings), then a separate commit-to-replica lag
phase, then restores the replica and checks it. Prints the figures, and one
JSON line with the same figures at the end. Exits non-zero when something is
wrong (the sidecar fails or exits non-zero, the restored database differs).

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

# The workload. --quick divides it by about ten.
FULL = dict(single_txns=20000, row_bytes=100, bulk_mib=200, blob_kib=64, txn_mib=4,
            lag_samples=300, lag_pause_ms=25)
QUICK = dict(single_txns=2000, row_bytes=100, bulk_mib=20, blob_kib=64, txn_mib=4,
             lag_samples=50, lag_pause_ms=25)
MIN_LAG_SAMPLES_FULL = 200
LAG_TIMEOUT_S = 5.0          # a commit not replicated by then counts as a timeout
READY_TIMEOUT_S = 30.0       # sidecar start: first snapshot in the replica
DRAIN_TIMEOUT_S = 300.0      # replica catching up after the writer ends
STOP_TIMEOUT_S = 60.0        # SIGTERM to exit
WAL_SAMPLE_S = 0.002


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


def writer_main(argv):
    """The application: a separate process, Python's sqlite3 with its defaults."""
    mode, path = argv[0], argv[1]
    p = json.loads(argv[2])
    conn = sqlite3.connect(path)  # default isolation_level, timeout=5.0 s (busy timeout)
    settings = {
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
        "wal_autocheckpoint": conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
        "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
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


def lz4_content_size(path):
    """Decompressed length from an LZ4 frame header's content-size field."""
    with open(path, "rb") as f:
        head = f.read(14)
    if len(head) < 14:
        raise BenchError(f"{path}: short lz4 frame header")
    magic, flg = struct.unpack_from("<IB", head)
    if magic != LZ4_MAGIC:
        raise BenchError(f"{path}: not an lz4 frame (magic {magic:#x})")
    if not flg & 0x08:
        raise BenchError(f"{path}: lz4 frame without content size")
    return struct.unpack_from("<Q", head, 6)[0]


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
    """Coverage of the replica's segments, reading each header once."""

    def __init__(self, replica):
        self.replica = replica
        self.sizes = {}

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
            key = (gen, name)
            n = self.sizes.get(key)
            if n is None:
                n = self.sizes[key] = lz4_content_size(os.path.join(d, name))
            best = max(best, pos[1] + n)
        return best


def replica_contents(replica):
    """WAL bytes in segments, their count, generations, snapshots and their bytes."""
    r = dict(wal_bytes=0, segments=0, generations=0, snapshots=0, snapshot_bytes=0)
    gdir = os.path.join(replica, "generations")
    gens = sorted(os.listdir(gdir)) if os.path.isdir(gdir) else []
    r["generations"] = len(gens)
    for gen in gens:
        d = os.path.join(gdir, gen, "wal")
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if parse_segment(name) is not None:
                r["wal_bytes"] += lz4_content_size(os.path.join(d, name))
                r["segments"] += 1
        d = os.path.join(gdir, gen, "snapshots")
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if name.endswith(".snapshot.lz4"):
                r["snapshot_bytes"] += lz4_content_size(os.path.join(d, name))
                r["snapshots"] += 1
    return r


def shadow_position(db):
    """(generation, newest shadow index, its size) from DB_DIR/.NAME-litestream."""
    meta = os.path.join(os.path.dirname(db), "." + os.path.basename(db) + "-litestream")
    try:
        with open(os.path.join(meta, "generation")) as f:
            gen = f.read().strip()
        wdir = os.path.join(meta, "generations", gen, "wal")
        idx = max(int(n[:8], 16) for n in os.listdir(wdir)
                  if n.endswith(".wal") and len(n) == 12)
        size = os.stat(os.path.join(wdir, f"{idx:08x}.wal")).st_size
    except (FileNotFoundError, ValueError):
        return None
    return gen, idx, size


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
    """Peak size of DB-wal per phase, sampled every few ms."""

    def __init__(self, wal):
        super().__init__(daemon=True)
        self.wal = wal
        self.phase = None
        self.peak = {}
        self.samples = {}
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


class Sidecar:
    def __init__(self, binary, db, replica, log_path):
        self.db, self.replica, self.log_path = db, replica, log_path
        self.log = open(log_path, "wb")
        # Its own process group, so that kill() also reaches any children
        # (a wrapper script around the binary, for instance).
        self.proc = subprocess.Popen([binary, "replicate", db, "file://" + replica],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise BenchError(f"sidecar exited early with {self.proc.returncode}\n{self.log_tail()}")

    def wait_ready(self):
        deadline = now() + READY_TIMEOUT_S
        gdir = os.path.join(self.replica, "generations")
        while now() < deadline:
            self.check_alive()
            if os.path.isdir(gdir):
                for gen in os.listdir(gdir):
                    sdir = os.path.join(gdir, gen, "snapshots")
                    if os.path.isdir(sdir) and any(n.endswith(".snapshot.lz4") for n in os.listdir(sdir)):
                        if shadow_position(self.db) is not None:
                            return
            time.sleep(0.01)
        raise BenchError(f"sidecar not ready after {READY_TIMEOUT_S:.0f} s\n{self.log_tail()}")

    def wait_caught_up(self, segs):
        """Until the replica covers the newest shadow WAL, twice 200 ms apart.
        Returns when it was first seen covered."""
        deadline = now() + DRAIN_TIMEOUT_S
        last = first = None
        while now() < deadline:
            self.check_alive()
            pos = shadow_position(self.db)
            if pos is not None and segs.coverage(pos[0], pos[1]) >= pos[2]:
                if pos == last:
                    return first
                last, first = pos, now()
                time.sleep(0.2)
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

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"sidecar did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM")
        if rc != 0:
            raise BenchError(f"sidecar exited {rc} after SIGTERM\n{self.log_tail()}")
        self.log.close()
        return rc

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
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


# ------------------------------------------------------------- phases ----

def verify_restore(binary, replica, out, expected):
    t0 = now()
    r = subprocess.run([binary, "restore", "-o", out, "file://" + replica],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    restore_s = now() - t0
    if r.returncode != 0:
        raise BenchError(f"restore exited {r.returncode}:\n{r.stdout}")
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


def run_load(work, binary, params, with_sidecar):
    """Workloads 1 and 2 on a fresh database; returns the figures."""
    db = os.path.join(work, "app.db")
    replica = os.path.join(work, "replica")
    create_db(db)
    res = {}
    side = writer = None
    sampler = WalSampler(db + "-wal")
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
        if side is None:
            return res
        segs = SegmentIndex(replica)
        res["drain_s"] = side.wait_caught_up(segs) - t_end
        cpu, hwm, rss = side.usage()
        res["sidecar_cpu_s"] = cpu
        res["sidecar_hwm_kib"] = hwm
        res["sidecar_rss_kib"] = rss
        side.stop()
        res["sidecar_exit"] = 0
        res["sidecar_problems"] = side.log_problems()
        rep = replica_contents(replica)
        res["wal_shipped"] = rep["wal_bytes"]
        res["replica"] = rep
        restore_s, got = verify_restore(binary, replica, os.path.join(work, "restored.db"),
                                        res["summary"])
        res["restore_s"] = restore_s
        res["restored"] = got
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
        segs = SegmentIndex(replica)
        writer = Writer("lag", db, params)
        writer.event("ready")
        prev_size = None
        for _ in range(params["lag_samples"]):
            before = shadow_position(side.db)
            salts_before = wal_salts(db)
            writer.send("go")
            ev = writer.event("commit")
            t_commit, size = ev["t"], ev["wal_size"]
            now_pos = shadow_position(side.db)
            gen, idx = now_pos[:2] if now_pos else (None, None)
            # The WAL restarted (new index, new salts, or a file that stopped
            # growing because frames are written from its start again):
            # the file size no longer marks the commit's end.
            restarted = (before is None or now_pos is None or before[:2] != (gen, idx)
                         or wal_salts(db) != salts_before
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
    }


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


def machine_header(binary, tmp_root, params, quick):
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
    ver = subprocess.run([binary, "version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True).stdout.strip()
    info = {
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "mem": mem,
        "kernel": platform.release(), "tmp": tmp_root, "fs": fstype, "fs_dev": dev,
        "fs_mount": mnt, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "litestream": ver, "loadavg": loadavg(),
    }
    print(f"litestream replication benchmark{' (--quick)' if quick else ''}")
    print(f"  machine : nproc {info['nproc']}, {cpu}, {mem} RAM, Linux {info['kernel']}")
    print(f"  load    : {loadavg()} (1/5/15 min load average at start; other work skews the figures)")
    print(f"  temp dir: {tmp_root} on {fstype} ({dev} mounted at {mnt})")
    print(f"  software: {binary} ({ver}); measurer: {sys.executable} {info['python']}, SQLite {info['sqlite']}")
    blobs = params["bulk_mib"] * 1024 // params["blob_kib"]
    print(f"  workload: 1) {params['single_txns']} single-row transactions "
          f"({params['row_bytes']}-byte blob each); 2) bulk load {params['bulk_mib']} MiB = "
          f"{blobs} x {params['blob_kib']} KiB random blobs, {params['txn_mib']} MiB per transaction;"
          f" lag: {params['lag_samples']} single-row commits, {params['lag_pause_ms']} ms apart")
    sys.stdout.flush()
    return info


def fmt(v, spec=".3f", unit=""):
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_writer":
        return writer_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description="litestream replication benchmark (prints figures)")
    ap.add_argument("--bin", required=True, help="path to the litestream binary")
    ap.add_argument("--quick", action="store_true", help="about 10x smaller workload (smoke run)")
    ap.add_argument("--tmpdir", default=None, help="where to make temp dirs (default: $TMPDIR or /tmp)")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        print(f"error: {binary} is not an executable", file=sys.stderr)
        return 2
    params = QUICK if args.quick else FULL

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # Interrupted runs still stop their processes and remove their temp dirs.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    root = tempfile.mkdtemp(prefix="litestream-bench-", dir=args.tmpdir)
    t_start = now()
    try:
        info = machine_header(binary, root, params, args.quick)
        print("\n[1/3] baseline: writer alone ...", flush=True)
        d = os.path.join(root, "baseline")
        os.mkdir(d)
        base = run_load(d, binary, params, with_sidecar=False)
        shutil.rmtree(d)
        s = base["settings"]
        print(f"  writer settings: journal_mode={s['journal_mode']} synchronous={s['synchronous']}"
              f" (2 = FULL) wal_autocheckpoint={s['wal_autocheckpoint']} page_size={s['page_size']}"
              f" busy timeout 5 s (Python sqlite3 defaults; writer: {PYTHON}"
              f" {s['python']}, SQLite {s['sqlite']})")
        print(f"  single-row: {base['single_s']:.3f} s   bulk: {base['bulk_s']:.3f} s   "
              f"WAL peak during bulk: {base['wal_peak_bulk'] / MiB:.1f} MiB", flush=True)

        print("\n[2/3] with sidecar: litestream replicate DB file:///REPLICA ...", flush=True)
        d = os.path.join(root, "sidecar")
        os.mkdir(d)
        side = run_load(d, binary, params, with_sidecar=True)
        shutil.rmtree(d)
        print(f"  single-row: {side['single_s']:.3f} s   bulk: {side['bulk_s']:.3f} s   "
              f"WAL peak during bulk: {side['wal_peak_bulk'] / MiB:.1f} MiB", flush=True)

        print("\n[3/3] commit-to-replica lag ...", flush=True)
        d = os.path.join(root, "lag")
        os.mkdir(d)
        lag = run_lag(d, binary, params)
        shutil.rmtree(d)
    except BenchError as e:
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}); cleaned up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)

    r1 = side["single_s"] / base["single_s"]
    r2 = side["bulk_s"] / base["bulk_s"]
    shipped_mib = side["wal_shipped"] / MiB
    rep = side["replica"]
    cpu_per_100 = side["sidecar_cpu_s"] / (shipped_mib / 100) if shipped_mib else None
    hwm_mib = side["sidecar_hwm_kib"] / 1024
    ok = lambda c: "ok" if c else "MISSED"

    print("\nResults")
    print(f"  baseline writer wall time : single-row {base['single_s']:.3f} s, bulk {base['bulk_s']:.3f} s")
    print(f"  sidecar  writer wall time : single-row {side['single_s']:.3f} s, bulk {side['bulk_s']:.3f} s")
    print(f"  slowdown (with / without) : single-row {r1:.3f} [{ok(r1 <= 1.05)}: <= 1.05], "
          f"bulk {r2:.3f} [{ok(r2 <= 1.05)}: <= 1.05]")
    print(f"  commit-to-replica lag     : p50 {fmt(lag['p50_ms'], '.1f')} ms, p99 {fmt(lag['p99_ms'], '.1f')} ms"
          f" [{ok(lag['p99_ms'] is not None and lag['p99_ms'] < 50)}: p99 < 50 ms]; max "
          f"{fmt(lag['max_ms'], '.1f')} ms, mean {fmt(lag['mean_ms'], '.1f')} ms; {lag['samples']} samples, "
          f"{lag['skipped']} skipped (WAL restart), {lag['timeouts']} timeouts (> {LAG_TIMEOUT_S:.0f} s)")
    print(f"  sidecar CPU               : {side['sidecar_cpu_s']:.2f} s for {shipped_mib:.1f} MiB of WAL "
          f"shipped in {rep['segments']} segments = {fmt(cpu_per_100, '.3f')} s per 100 MiB")
    print(f"  replica contents          : {rep['generations']} generation(s), {rep['snapshots']} "
          f"snapshot(s) holding {rep['snapshot_bytes'] / MiB:.1f} MiB (1 generation and 1 snapshot "
          f"expected on a quiet run)")
    print(f"  sidecar peak RSS (VmHWM)  : {hwm_mib:.1f} MiB [{ok(hwm_mib < 16)}: < 16 MiB] "
          f"(VmRSS at stop {side['sidecar_rss_kib'] / 1024:.1f} MiB)")
    print(f"  WAL peak size during bulk : {side['wal_peak_bulk'] / MiB:.1f} MiB with sidecar, "
          f"{base['wal_peak_bulk'] / MiB:.1f} MiB baseline ({side['wal_samples_bulk']} samples every "
          f"{WAL_SAMPLE_S * 1000:.0f} ms); during single-row: {side['wal_peak_single'] / MiB:.1f} MiB "
          f"with, {base['wal_peak_single'] / MiB:.1f} MiB without")
    print(f"  replica drain after writer: {side['drain_s']:.2f} s; sidecar exit on SIGTERM: "
          f"{side['sidecar_exit']}")
    rs = side["restored"]
    print(f"  restore                   : {side['restore_s']:.2f} s; t {rs['t_rows']} rows, blobs "
          f"{rs['blobs_rows']} rows, contents identical to the source (sha256); lag-phase replica "
          f"restored in {lag['restore_s']:.2f} s with {lag['rows']} rows, identical")
    problems = side["sidecar_problems"] + lag["sidecar_problems"]
    print(f"  sidecar WARN/ERROR lines  : {len(problems)}")
    for line in problems[:10]:
        print("    " + line)
    print(f"  total benchmark time      : {now() - t_start:.1f} s; load average at end {loadavg()}")
    warn = not args.quick and lag["samples"] < MIN_LAG_SAMPLES_FULL
    if warn:
        print(f"WARNING: only {lag['samples']} lag samples (< {MIN_LAG_SAMPLES_FULL})")
    out = {
        "bench": "replicate", "quick": args.quick, "nproc": info["nproc"], "fs": info["fs"],
        "loadavg_start": info["loadavg"],
        "litestream": info["litestream"], "sqlite": info["sqlite"],
        "synchronous": base["settings"]["synchronous"],
        "single_txns": params["single_txns"], "bulk_mib": params["bulk_mib"],
        "baseline_single_s": round(base["single_s"], 4), "baseline_bulk_s": round(base["bulk_s"], 4),
        "sidecar_single_s": round(side["single_s"], 4), "sidecar_bulk_s": round(side["bulk_s"], 4),
        "ratio_single": round(r1, 4), "ratio_bulk": round(r2, 4),
        "lag_p50_ms": None if lag["p50_ms"] is None else round(lag["p50_ms"], 2),
        "lag_p99_ms": None if lag["p99_ms"] is None else round(lag["p99_ms"], 2),
        "lag_max_ms": None if lag["max_ms"] is None else round(lag["max_ms"], 2),
        "lag_samples": lag["samples"], "lag_skipped": lag["skipped"], "lag_timeouts": lag["timeouts"],
        "sidecar_cpu_s": round(side["sidecar_cpu_s"], 3), "wal_shipped_bytes": side["wal_shipped"],
        "sidecar_cpu_s_per_100mib": None if cpu_per_100 is None else round(cpu_per_100, 4),
        "replica_generations": rep["generations"], "replica_snapshots": rep["snapshots"],
        "replica_snapshot_bytes": rep["snapshot_bytes"],
        "sidecar_peak_rss_mib": round(hwm_mib, 2),
        "wal_peak_bulk_mib": round(side["wal_peak_bulk"] / MiB, 2),
        "baseline_wal_peak_bulk_mib": round(base["wal_peak_bulk"] / MiB, 2),
        "drain_s": round(side["drain_s"], 3), "restore_s": round(side["restore_s"], 3),
        "restored_rows_t": rs["t_rows"], "restored_rows_blobs": rs["blobs_rows"],
        "sidecar_exit": side["sidecar_exit"], "sidecar_problems": len(problems),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
