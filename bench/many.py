#!/usr/bin/python3
"""Many databases in one process (see bench/README.md). Prints figures; not a test.

    /usr/bin/python3 bench/many.py --bin PATH/TO/litestream [--compare 0.3.13-BIN]
        [--n 1000] [--mb 1] [--idle-s 60] [--write-s 30] [--backends file,s3] [--quick]

N databases of MB megabytes each in one directory, replicated by one
`litestream replicate`: ours through one [dir] section, Litestream 0.3.x
(--compare) through N `dbs:` entries of a YAML config. Per binary and per
backend (a file replica; S3 on a RADOS Gateway of its own, through a
counting proxy, as bench/s3.py starts it):

  1. start: seconds until every database has its first snapshot in the
     replica;
  2. idle (--idle-s): CPU seconds of the sidecar (utime + stime of all
     threads) over the period, as a percentage of one core; its RSS and
     VmHWM; its open file descriptors; S3 requests per minute;
  3. writes (--write-s): 10 of the databases written continuously, one row
     per commit and a pause of 50-150 ms, each by its own thread with its own
     connection; per commit, the lag until the replica holds a segment
     that covers it (shadow WAL offsets, as bench/s3.py measures them);
     p50 and p99 over all ten; S3 requests per minute for the ten written
     and for all the others (which should make none).

Everything it starts is stopped and its temporary directories removed at
the end. Only the standard library and bench/s3.py's helpers (rgw, the
counting proxy, the S3 poller) are used.
"""

import argparse
import glob
import json
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
sys.path.insert(0, HERE)
import s3 as s3b  # noqa: E402

WRITTEN = 10
LAG_TIMEOUT_S = 10.0


def now():
    return time.monotonic()


def build_template(path, mb):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    rng = random.Random(7)
    row = 1000
    for _ in range(mb * 1000 * 1000 // row):
        conn.execute("INSERT INTO t (v) VALUES (?)", (rng.randbytes(row // 2).hex(),))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def make_data(root, n, mb):
    data = os.path.join(root, "tenants")
    os.mkdir(data)
    tpl = os.path.join(root, "template.db")
    build_template(tpl, mb)
    for i in range(n):
        shutil.copyfile(tpl, os.path.join(data, f"t{i:04d}.db"))
    return data


def clean_shadows(data):
    for d in glob.glob(os.path.join(data, ".*-litestream")):
        shutil.rmtree(d)
    for f in glob.glob(os.path.join(data, "*-wal")) + glob.glob(os.path.join(data, "*-shm")):
        os.unlink(f)


def lz4_frame_size(data, what):
    """Decompressed length of an LZ4 frame: its content-size field (ours),
    else the sum of its blocks, walked sequence by sequence (Litestream 0.3
    writes frames without the field)."""
    magic, flg = int.from_bytes(data[0:4], "little"), data[4]
    if magic != s3b.LZ4_MAGIC:
        raise s3b.BenchError(f"{what}: not an lz4 frame")
    if flg & 0x08:
        return int.from_bytes(data[6:14], "little")
    pos = 6 + (4 if flg & 0x01 else 0) + 1
    total = 0
    while True:
        size = int.from_bytes(data[pos:pos + 4], "little")
        pos += 4
        if size == 0:
            return total
        raw, size = size & 0x80000000, size & 0x7FFFFFFF
        block = data[pos:pos + size]
        pos += size + (4 if flg & 0x10 else 0)
        if raw:
            total += size
            continue
        i = 0
        while i < len(block):
            token = block[i]
            i += 1
            lit = token >> 4
            if lit == 15:
                while True:
                    b = block[i]
                    i += 1
                    lit += b
                    if b != 255:
                        break
            i += lit
            total += lit
            if i >= len(block):
                break
            i += 2
            m = token & 15
            if m == 15:
                while True:
                    b = block[i]
                    i += 1
                    m += b
                    if b != 255:
                        break
            total += m + 4


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                out[k] = int(v.split()[0])
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Run:
    """One sidecar over the N databases, with one backend."""

    def __init__(self, label, binary, kind, backend, root, data, n, rgw=None, proxy=None):
        self.label, self.binary, self.kind, self.backend = label, binary, kind, backend
        self.root, self.data, self.n = root, data, n
        self.rgw, self.proxy = rgw, proxy
        self.work = os.path.join(root, f"{label}-{backend}")
        os.mkdir(self.work)
        self.names = [f"t{i:04d}.db" for i in range(n)]
        self.prefix = f"{label}-{backend}"
        self.backup = os.path.join(self.work, "backup")
        self.s3 = s3b.S3(rgw.port, s3b.BUCKET) if rgw else None
        self.conf = self.write_conf()
        self.proc = None

    def write_conf(self):
        if self.kind == "ours":
            path = os.path.join(self.work, "litestream.conf")
            lines = ["[litestream]", f"socket = {os.path.join(self.work, 'ctl.sock')}",
                     "[dir tenants]", f"path = {self.data}", "[replica r]", "db = tenants"]
            if self.backend == "file":
                lines += ["type = file", f"path = {self.backup}"]
            else:
                lines += [f"url = s3://{s3b.BUCKET}/{self.prefix}?endpoint=http://127.0.0.1:"
                          f"{self.proxy.port}&region={s3b.REGION}"]
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            return path
        path = os.path.join(self.work, "litestream.yml")
        with open(path, "w") as f:
            f.write("dbs:\n")
            for name in self.names:
                f.write(f"  - path: {os.path.join(self.data, name)}\n    replicas:\n")
                if self.backend == "file":
                    f.write(f"      - path: {os.path.join(self.backup, name)}\n")
                else:
                    f.write(f"      - type: s3\n        bucket: {s3b.BUCKET}\n"
                            f"        path: {self.prefix}/{name}\n"
                            f"        endpoint: http://127.0.0.1:{self.proxy.port}\n"
                            f"        region: {s3b.REGION}\n        force-path-style: true\n")
        return path

    def start(self):
        env = s3b.sidecar_env()
        if self.kind != "ours":
            env["AWS_ACCESS_KEY_ID"] = s3b.ACCESS_KEY
            env["AWS_SECRET_ACCESS_KEY"] = s3b.SECRET_KEY
        self.log = open(os.path.join(self.work, "log"), "wb")
        self.proc = subprocess.Popen([self.binary, "replicate", "-config", self.conf],
                                     stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True)

    def alive(self):
        if self.proc.poll() is not None:
            with open(os.path.join(self.work, "log"), errors="replace") as f:
                tail = f.read()[-3000:]
            raise s3b.BenchError(f"{self.label} {self.backend}: sidecar exited "
                                 f"{self.proc.returncode}:\n{tail}")

    def snapshotted(self):
        if self.backend == "file":
            return sum(1 for name in self.names
                       if glob.glob(os.path.join(self.backup, name, "generations", "*", "snapshots",
                                                 "*")))
        keys = self.s3.list(self.prefix + "/")
        return len({k.split("/")[1] for k, _ in keys if "/snapshots/" in k})

    def wait_snapshots(self, timeout=900):
        t0 = now()
        while True:
            self.alive()
            got = self.snapshotted()
            if got >= self.n:
                return now() - t0
            if now() - t0 > timeout:
                raise s3b.BenchError(f"{self.label} {self.backend}: {got}/{self.n} snapshots "
                                     f"after {timeout}s")
            time.sleep(0.25)

    def coverage_fn(self):
        best = {}
        if self.backend == "s3":
            s3 = s3b.S3(self.rgw.port, s3b.BUCKET)

            def cov(name, gen, idx):
                k = (name, gen, idx)
                pfx = f"{self.prefix}/{name}/generations/{gen}/wal/{idx:08x}_"
                for key, _ in s3.list(pfx, best.get(("last",) + k)):
                    best[("last",) + k] = max(best.get(("last",) + k, ""), key)
                    pos = s3b.parse_segment(key.rsplit("/", 1)[1])
                    if pos is None or pos[0] != idx:
                        continue
                    head = s3.head_bytes(key, 14)
                    if not head[4] & 0x08:
                        head = s3.request("GET", key)
                    best[k] = max(best.get(k, 0), pos[1] + lz4_frame_size(head, key))
                return best.get(k, 0)
            return cov

        def cov(name, gen, idx):
            d = os.path.join(self.backup, name, "generations", gen, "wal")
            b = best.get((name, gen, idx), 0)
            try:
                files = os.listdir(d)
            except FileNotFoundError:
                return b
            for f in files:
                pos = s3b.parse_segment(f)
                if pos is None or pos[0] != idx or (name, f) in best:
                    continue
                with open(os.path.join(d, f), "rb") as fh:
                    b = max(b, pos[1] + lz4_frame_size(fh.read(), f))
                best[(name, f)] = True
            best[(name, gen, idx)] = b
            return b
        return cov

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.log.close()


def writer_thread(run, name, seconds, lags, skipped, stop):
    db = os.path.join(run.data, name)
    cov = run.coverage_fn()
    conn = sqlite3.connect(db, timeout=30)
    rng = random.Random(name)
    t_end = now() + seconds
    while now() < t_end and not stop.is_set():
        before = s3b.shadow_position(db)
        conn.execute("INSERT INTO t (v) VALUES (?)", (rng.randbytes(50).hex(),))
        conn.commit()
        t = now()
        size = os.stat(db + "-wal").st_size
        time.sleep(0.002)
        pos = s3b.shadow_position(db)
        if before is None or pos is None or before[:2] != pos[:2]:
            skipped.append(1)
        else:
            gen, idx = pos[:2]
            while True:
                if cov(name, gen, idx) >= size:
                    lags.append((now() - t) * 1000)
                    break
                p2 = s3b.shadow_position(db)
                if p2 is None or p2[:2] != (gen, idx):
                    skipped.append(1)
                    break
                if now() - t > LAG_TIMEOUT_S:
                    lags.append(LAG_TIMEOUT_S * 1000)
                    break
                time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.15))
    conn.close()


def requests_split(run, t0, t1):
    """S3 requests in [t0, t1): (to the written databases, to the others)."""
    if run.proxy is None:
        return None, None
    written = {f"t{i:04d}.db" for i in range(WRITTEN)}
    w = o = 0
    for _, target in run.proxy.between(t0, t1):
        parts = target.split("?")[0].split("/")
        # /BUCKET/PREFIX/tNNNN.db/... (path style); a listing names it in its query
        name = parts[3] if len(parts) > 3 else None
        if name is None and "prefix=" in target:
            q = target.split("prefix=", 1)[1].split("&")[0].replace("%2F", "/")
            name = q.split("/")[1] if "/" in q else None
        if name in written:
            w += 1
        else:
            o += 1
    return w, o


def measure(run, idle_s, write_s):
    run.start()
    t_start = now()
    first = run.wait_snapshots()
    time.sleep(3)  # the last shipments after the snapshots
    pid = run.proc.pid
    c0, t0 = cpu_seconds(pid), now()
    # The second half apart: by then every database has been put at rest.
    time.sleep(idle_s / 2)
    ch, th = cpu_seconds(pid), now()
    time.sleep(idle_s / 2)
    run.alive()
    c1, t1 = cpu_seconds(pid), now()
    st = proc_status(pid)
    nfd = fds(pid)
    idle_req = len(run.proxy.between(t0, t1)) if run.proxy else None
    lags, skipped, stop = [], [], threading.Event()
    threads = [threading.Thread(target=writer_thread,
                                args=(run, f"t{i:04d}.db", write_s, lags, skipped, stop))
               for i in range(WRITTEN)]
    w0 = now()
    c2 = cpu_seconds(pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w1 = now()
    c3 = cpu_seconds(pid)
    run.alive()
    st2 = proc_status(pid)
    rw, ro = requests_split(run, w0, w1)
    run.stop()
    lags.sort()
    pct = (lambda q: s3b.percentile(lags, q)) if lags else (lambda q: None)
    return {
        "binary": run.label, "backend": run.backend, "n": run.n,
        "first_snapshots_s": round(first, 1), "since_start_s": round(now() - t_start, 1),
        "idle_cpu_pct": round((c1 - c0) / (t1 - t0) * 100, 2),
        "idle_cpu_pct_2nd_half": round((c1 - ch) / (t1 - th) * 100, 2),
        "rss_mib": round(st["VmRSS"] / 1024, 1),
        "rss_anon_mib": round(st.get("RssAnon", 0) / 1024, 1),
        "rss_file_mib": round((st.get("RssFile", 0) + st.get("RssShmem", 0)) / 1024, 1),
        "hwm_mib": round(st2["VmHWM"] / 1024, 1),
        "threads": st["Threads"], "fds": nfd,
        "idle_req_per_min": None if idle_req is None else round(idle_req / (t1 - t0) * 60, 1),
        "write_cpu_pct": round((c3 - c2) / (w1 - w0) * 100, 1),
        "lag_samples": len(lags), "lag_skipped": len(skipped),
        "lag_p50_ms": pct(50), "lag_p99_ms": pct(99),
        "written_req_per_min": None if rw is None else round(rw / (w1 - w0) * 60, 1),
        "others_req_per_min": None if ro is None else round(ro / (w1 - w0) * 60, 1),
    }


def fmt(v):
    if v is None:
        return "n/a"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--compare", help="a Litestream 0.3.x binary given N dbs: entries")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--mb", type=int, default=1)
    ap.add_argument("--idle-s", type=float, default=60)
    ap.add_argument("--write-s", type=float, default=30)
    ap.add_argument("--backends", default="file,s3")
    ap.add_argument("--quick", action="store_true", help="100 databases, 10 s phases")
    ap.add_argument("--tmpdir", default=os.environ.get("TMPDIR", "/tmp"))
    a = ap.parse_args()
    if a.quick:
        a.n, a.idle_s, a.write_s = 100, 10, 10
    root = tempfile.mkdtemp(prefix="ls-many-", dir=a.tmpdir)
    rgw = proxy = None
    results = []
    try:
        data = make_data(root, a.n, a.mb)
        backends = a.backends.split(",")
        if "s3" in backends:
            rgw = s3b.Rgw(os.path.join(root, "rgw"))
            os.mkdir(rgw.dir)
            rgw.start()
            rgw.create_bucket(s3b.BUCKET)
            proxy = s3b.CountingProxy(rgw.port)
        bins = [("ours", a.bin, "ours")] + ([("0.3", a.compare, "theirs")] if a.compare else [])
        for backend in backends:
            for label, binary, kind in bins:
                clean_shadows(data)
                run = Run(label, binary, kind, backend, root, data, a.n,
                          rgw if backend == "s3" else None, proxy if backend == "s3" else None)
                try:
                    r = measure(run, a.idle_s, a.write_s)
                finally:
                    run.stop()
                results.append(r)
                print(json.dumps(r), flush=True)
        keys = ["first_snapshots_s", "idle_cpu_pct", "idle_cpu_pct_2nd_half", "rss_mib",
                "rss_anon_mib", "rss_file_mib", "hwm_mib", "threads", "fds",
                "idle_req_per_min", "write_cpu_pct", "lag_samples", "lag_p50_ms", "lag_p99_ms",
                "written_req_per_min", "others_req_per_min"]
        print(f"\n{a.n} databases of {a.mb} MB; idle {a.idle_s:.0f} s; {WRITTEN} written for "
              f"{a.write_s:.0f} s")
        print(f"{'':24}" + "".join(f"{r['binary'] + ' ' + r['backend']:>14}" for r in results))
        for k in keys:
            print(f"{k:24}" + "".join(f"{fmt(r[k]):>14}" for r in results))
    finally:
        if proxy:
            proxy.close()
        if rgw:
            rgw.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
