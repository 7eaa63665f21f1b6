#!/usr/bin/python3
"""Read-replica benchmark for `litestream restore -f` (see bench/README.md).
Prints figures; not a test.

    /usr/bin/python3 bench/follow.py --bin PATH/TO/litestream [--commits N] [--no-s3] [--tmpdir DIR]

For each setup, a primary with `litestream replicate` and a follower
(`restore -f -o COPY URL`) run together; a writer commits one row every
50 ms (plus jitter) and a reader polls the copy every 2 ms:

  1. file replica, -follow-interval 1s: fs events wake the follower as
     soon as a segment lands, the interval only bounds a missed event
  2. the same with -follow-interval 100ms
  3. S3 replica (Ceph's RADOS Gateway on loopback, test/rgw/rgw-up.sh),
     replicate at sync-interval 1s (the S3 default), -follow-interval 1s:
     pure polling, so commit -> visible is up to one sync-interval plus one
     follow-interval

and reports commit -> visible on the copy, p50/p99/max; then, with no
writes, the follower's CPU over 10 s and its RSS (VmRSS, VmHWM).
Everything it starts is stopped and its temporary directories removed.
"""
import argparse
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))


def wait_for(cond, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mem_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out


def counter(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT max(n) FROM log").fetchone()[0] or 0
    finally:
        conn.close()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def run_phase(name, binary, workdir, primary_url, follow_url, follow_args, commits, env=None):
    db, copy = os.path.join(workdir, "primary.db"), os.path.join(workdir, "copy.db")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE log (n INTEGER PRIMARY KEY, t REAL, data BLOB)")
    conn.execute("INSERT INTO log VALUES (0, 0, NULL)")
    logs = open(os.path.join(workdir, "log"), "ab")
    rep = subprocess.Popen([binary, "replicate", db, primary_url], stdout=logs, stderr=logs, env=env)
    fol = None
    try:
        time.sleep(0.5)
        fol = subprocess.Popen([binary, "restore", "-f", *follow_args, "-o", copy, follow_url],
                               stdout=logs, stderr=logs, env=env)
        wait_for(lambda: os.path.exists(copy + ".follow"), what="the follower's first restore")
        commit_at, seen_at = {}, {}
        stop = threading.Event()

        def reader():
            rc = sqlite3.connect(f"file:{copy}?mode=ro", uri=True, timeout=30, isolation_level=None)
            last = 0
            while not stop.is_set():
                try:
                    c = rc.execute("SELECT max(n) FROM log").fetchone()[0] or 0
                except sqlite3.Error:
                    c = last
                now = time.monotonic()
                for i in range(last + 1, c + 1):
                    seen_at[i] = now
                last = max(last, c)
                time.sleep(0.002)
            rc.close()

        t = threading.Thread(target=reader)
        t.start()
        for i in range(1, commits + 1):
            conn.execute("INSERT INTO log VALUES (?, ?, randomblob(100))", (i, time.time()))
            commit_at[i] = time.monotonic()
            time.sleep(0.05 + random.random() * 0.02)
        wait_for(lambda: len(seen_at) >= commits, timeout=60, what="every commit visible")
        stop.set()
        t.join()
        lat = [(seen_at[i] - commit_at[i]) * 1000 for i in range(1, commits + 1)]
        time.sleep(1.0)
        c0, t0 = cpu_seconds(fol.pid), time.monotonic()
        time.sleep(10)
        idle_cpu = (cpu_seconds(fol.pid) - c0) / (time.monotonic() - t0) * 100
        mem = mem_kb(fol.pid)
        print(f"{name:34s} p50 {statistics.median(lat):7.1f} ms  p99 {pct(lat, 99):7.1f} ms  "
              f"max {max(lat):7.1f} ms  | idle CPU {idle_cpu:5.2f}%  RSS {mem['VmRSS'] / 1024:5.1f} MB "
              f"(peak {mem['VmHWM'] / 1024:5.1f} MB)", flush=True)
        assert counter(copy) == commits
    finally:
        for p in (fol, rep):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        conn.close()
        logs.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--commits", type=int, default=200)
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--tmpdir", default=None)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    print(f"commit -> visible on the follower's copy, {a.commits} commits at ~20/s; idle over 10 s")
    phases = [("file, fs events, interval 1s", ["-follow-interval", "1s"]),
              ("file, fs events, interval 100ms", ["-follow-interval", "100ms"])]
    for name, args in phases:
        d = tempfile.mkdtemp(prefix="ls-follow-bench-", dir=a.tmpdir)
        try:
            url = "file://" + os.path.join(d, "replica")
            run_phase(name, binary, d, url, url, args, a.commits)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    if a.no_s3:
        return
    try:
        import s3server
        ctx = s3server.rgw_server()
        server = ctx.__enter__()
    except BaseException as e:  # pytest.skip outside pytest, or a failed start
        print(f"S3 phase skipped: {e}")
        return
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(LITESTREAM_ACCESS_KEY_ID=server.access_key,
                   LITESTREAM_SECRET_ACCESS_KEY=server.secret_key,
                   AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials")
        for name, args in [("s3, sync-interval 1s, interval 1s", ["-follow-interval", "1s"])]:
            d = tempfile.mkdtemp(prefix="ls-follow-bench-", dir=a.tmpdir)
            try:
                url = server.replica_url(f"bench-{os.getpid()}-{random.randrange(1 << 30)}")
                run_phase(name, binary, d, url, url, args, a.commits, env=env)
            finally:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        ctx.__exit__(None, None, None)


if __name__ == "__main__":
    main()
