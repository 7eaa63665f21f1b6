#!/usr/bin/python3
"""Restore throughput benchmark (prints figures; not a test).

Builds a database of --size-mb (default 1024), replicates it to a file
replica with the real `litestream replicate`, then rewrites the same hot
pages in --segments single-row transactions (each shipped as its own
segment). Measures, in one run:

  cp      copying the database file (the baseline)
  (a)     `litestream restore` from a replica holding only the snapshot
  (b)     `litestream restore` from the snapshot plus every segment

and prints MB/s and the ratios (a)/cp (goal >= 0.5) and (b)/(a) time
(goal <= 1.5).

usage: bench/restore.py --bin PATH/TO/litestream [--size-mb N] [--segments N] [--dir DIR]
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time


def log(msg):
    print(msg, flush=True)


def build_db(path, size_mb):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("CREATE TABLE hot (id INTEGER PRIMARY KEY, v BLOB)")
    # Half random, half repetitive: about what real pages compress to.
    row = 3000
    rows = size_mb * 1024 * 1024 // row
    conn.execute("BEGIN")
    for i in range(rows):
        conn.execute("INSERT INTO t (v) VALUES (randomblob(1500) || zeroblob(1500))")
        if i % 20000 == 19999:
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("BEGIN")
    for i in range(64):
        conn.execute("INSERT INTO hot (id, v) VALUES (?, randomblob(3000))", (i,))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def timed(cmd):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--segments", type=int, default=2000)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="litestream-bench-restore-", dir=args.dir)
    try:
        db = os.path.join(work, "app.db")
        replica = os.path.join(work, "replica")
        log(f"machine: {os.cpu_count()} cpus; scratch {work}")
        t0 = time.monotonic()
        build_db(db, args.size_mb)
        size = os.path.getsize(db)
        log(f"built {size / 1e6:.0f} MB database in {time.monotonic() - t0:.1f}s")

        logf = open(os.path.join(work, "replicate.log"), "wb")
        rep = subprocess.Popen([args.bin, "replicate", db, f"file://{replica}"], stdout=logf, stderr=logf)
        snapdir = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and snapdir is None:
            time.sleep(0.2)
            gens = os.path.join(replica, "generations")
            for g in os.listdir(gens) if os.path.isdir(gens) else []:
                d = os.path.join(gens, g, "snapshots")
                if os.path.isdir(d) and any(n.endswith(".snapshot.lz4") for n in os.listdir(d)):
                    snapdir = d
        if snapdir is None:
            sys.exit("snapshot never appeared")
        gen_dir = os.path.dirname(snapdir)
        conn = sqlite3.connect(db, isolation_level=None)
        for i in range(args.segments):
            conn.execute("UPDATE hot SET v = randomblob(3000) WHERE id = ?", (i % 64,))
            time.sleep(0.002)
        conn.close()
        walfiles = lambda: len(os.listdir(os.path.join(gen_dir, "wal")))
        time.sleep(1)
        rep.send_signal(signal.SIGTERM)
        if rep.wait(timeout=120) != 0:
            sys.exit("replicate did not exit cleanly")
        n_segments = walfiles()

        only_snap = os.path.join(work, "only-snapshot")
        shutil.copytree(os.path.dirname(os.path.dirname(gen_dir)), only_snap)
        for g in os.listdir(os.path.join(only_snap, "generations")):
            shutil.rmtree(os.path.join(only_snap, "generations", g, "wal"), ignore_errors=True)

        subprocess.run(["sync"])
        t_cp = timed(["cp", db, os.path.join(work, "copy.db")])
        t_a = timed([args.bin, "restore", "-o", os.path.join(work, "a.db"), f"file://{only_snap}"])
        t_b = timed([args.bin, "restore", "-o", os.path.join(work, "b.db"), f"file://{replica}"])
        mb = size / 1e6
        res = {
            "db_mb": round(mb), "segments": n_segments,
            "cp_mb_s": round(mb / t_cp, 1),
            "restore_snapshot_mb_s": round(mb / t_a, 1),
            "restore_snapshot_plus_segments_mb_s": round(mb / t_b, 1),
            "a_over_cp": round(t_cp / t_a, 3),
            "b_time_over_a": round(t_b / t_a, 3),
        }
        log(f"cp:                                {t_cp:7.2f}s  {mb / t_cp:8.1f} MB/s")
        log(f"(a) restore, snapshot only:        {t_a:7.2f}s  {mb / t_a:8.1f} MB/s  = {t_cp / t_a:.2f} of cp (goal >= 0.5)")
        log(f"(b) restore, + {n_segments} segments: {t_b:7.2f}s  {mb / t_b:8.1f} MB/s  = {t_b / t_a:.2f}x (a) (goal <= 1.5)")
        log(json.dumps(res))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
