#!/usr/bin/python3
"""Restore throughput benchmark (prints figures; not a test).

Builds a database of --size-mb (default 1024), replicates it to a file
replica with the real `litestream replicate`, then rewrites the same hot
pages in --segments single-row transactions (each shipped as its own
segment). Measures, in one run:

  cp      copying the database file and fsyncing the copy (the baseline:
          a restore is durable before it is renamed into place)
  (a)     `litestream restore` from a replica holding only the snapshot
  (b)     `litestream restore` from the snapshot plus every segment

each --runs times (the median is printed, with min and max and the peak
RSS), and the ratios (a)/cp time (goal <= 1.5, integrity check included)
and (b)/(a) time (goal <= 1.5). With --compare BIN, that binary (e.g.
Litestream 0.3.13, which reads the same layout) restores the same two
replicas in the same run, in turn with ours.

usage: bench/restore.py --bin PATH/TO/litestream [--compare BIN] [--size-mb N]
                        [--segments N] [--runs N] [--dir DIR]
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


def timed(cmd, out=None):
    """Runs cmd (after removing out); its wall time and peak RSS in MiB."""
    if out is not None and os.path.exists(out):
        os.unlink(out)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed: {err.strip()}")
    return wall, ru.ru_maxrss / 1024


def cp_fsync(src, dst):
    """cp, then fsync of the copy: what a durable copy costs."""
    return ["sh", "-c", 'cp "$0" "$1" && sync -f "$1"', src, dst]


def median_run(cmd, out, runs):
    got = sorted(timed(cmd, out) for _ in range(runs))
    walls = sorted(w for w, _ in got)
    return {"median": walls[len(walls) // 2], "min": walls[0], "max": walls[-1],
            "rss": max(r for _, r in got)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--segments", type=int, default=2000)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--compare", default=None, help="a second binary to restore the same replicas")
    ap.add_argument("--runs", type=int, default=3)
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
        mb = size / 1e6
        bins = [("ours", args.bin)] + ([("compare", args.compare)] if args.compare else [])
        cp = median_run(cp_fsync(db, os.path.join(work, "copy.db")), os.path.join(work, "copy.db"),
                        args.runs)
        rows = {}
        for name, path in bins:
            out = os.path.join(work, f"{name}.db")
            rows[name] = {
                "a": median_run([path, "restore", "-o", out, f"file://{only_snap}"], out, args.runs),
                "b": median_run([path, "restore", "-o", out, f"file://{replica}"], out, args.runs),
            }
        def line(label, m):
            return (f"{label:<36}{m['median']:7.2f}s (min {m['min']:.2f}, max {m['max']:.2f})"
                    f"  {mb / m['median']:7.1f} MB/s  peak RSS {m['rss']:7.1f} MiB")
        log(line("cp + fsync:", cp))
        res = {"db_mb": round(mb), "segments": n_segments, "runs": args.runs,
               "cp_s": round(cp["median"], 3)}
        for name, path in bins:
            a, b = rows[name]["a"], rows[name]["b"]
            log(f"{name}: {path}")
            log(line("  (a) restore, snapshot only:", a)
                + f"  = {a['median'] / cp['median']:.2f}x cp (goal <= 1.5)")
            log(line(f"  (b) restore, + {n_segments} segments:", b)
                + f"  = {b['median'] / a['median']:.2f}x (a) (goal <= 1.5)")
            res[name] = {"a_s": round(a["median"], 3), "b_s": round(b["median"], 3),
                         "a_over_cp": round(a["median"] / cp["median"], 3),
                         "b_over_a": round(b["median"] / a["median"], 3),
                         "a_rss_mib": round(a["rss"], 1), "b_rss_mib": round(b["rss"], 1)}
        if args.compare:
            log(f"ours / compare, (a): {rows['ours']['a']['median'] / rows['compare']['a']['median']:.2f}"
                f"   (b): {rows['ours']['b']['median'] / rows['compare']['b']['median']:.2f}")
        log(json.dumps(res))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
