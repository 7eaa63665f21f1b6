#!/usr/bin/python3
"""S3 benchmark for litestream (see bench/README.md). Prints figures; not a test.

    /usr/bin/python3 bench/s3.py --bin PATH/TO/litestream [--quick] [--size-mb N] [--tmpdir DIR]
    /usr/bin/python3 bench/s3.py --bin PATH/TO/litestream --outage-minutes 10

With --outage-minutes N it runs only an outage: one row every 20 ms while
the proxy answers every request with 503 SlowDown for N minutes, printing
requests per minute, sync?wait=1 answers, the sidecar's memory, the WAL and
the shadow WAL over the outage, the catch-up time, that the segments tile
every WAL index, and a restore equal to the source.

Starts its own S3 server (Ceph's RADOS Gateway, one node, objects in memory,
on 127.0.0.1, with test/rgw/rgw-up.sh on free ports), creates a bucket with
/usr/bin/aws, and measures the real `litestream replicate` against
s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:PORT:

  1. requests: S3 requests per minute (PUTs above all) under steady writes (one
     small row every 20 ms) and while idle, counted by a counting reverse
     proxy between the sidecar and rgw, cross-checked with the sidecar's own
     debug log (one line per request attempt) and the objects the bucket
     gained;
  2. lag: commit-to-replica lag, p50/p99, with sync-interval 1s (the S3
     default) and 0, by polling the bucket (ListObjectsV2 and a ranged GET of
     each new segment's LZ4 frame header);
  3. snapshot: upload throughput of the snapshot of a --size-mb database
     (multipart, part-size 8 MiB), from the sidecar's start until the
     snapshot object is listed in the bucket;
  4. restore: `litestream restore -o OUT s3://...` of that database, timed,
     against `cp` of the database file.

Also the sidecar's peak RSS (VmHWM) and CPU seconds per phase, a machine
header, and one JSON line at the end. Everything it starts (rgw, sidecars in
their own process groups, writers) is stopped and its temp dirs are removed at
the end, on errors and on SIGINT/SIGTERM. Only the standard library is used;
the writer is this file re-run as `s3.py _writer MODE ...`.
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

PYTHON = "/usr/bin/python3"
AWS = "/usr/bin/aws"
HERE = os.path.dirname(os.path.abspath(__file__))
RGW_UP = os.path.join(HERE, "..", "test", "rgw", "rgw-up.sh")
RGW_DOWN = os.path.join(HERE, "..", "test", "rgw", "rgw-down.sh")

ACCESS_KEY = "LITESTREAMBENCHKEY"
SECRET_KEY = "litestream-bench-secret-key"
REGION = "us-east-1"
BUCKET = "litestream-bench"

MiB = 1024 * 1024
MB = 1000 * 1000
LZ4_MAGIC = 0x184D2204

FULL = dict(steady_s=30.0, idle_s=30.0, write_every_ms=20, row_bytes=100,
            lag_samples_1s=100, lag_samples_0=300, lag_pause_ms=25, size_mb=1024)
QUICK = dict(steady_s=10.0, idle_s=10.0, write_every_ms=20, row_bytes=100,
             lag_samples_1s=30, lag_samples_0=30, lag_pause_ms=25, size_mb=100)
MIN_LAG_SAMPLES = 30
LAG_TIMEOUT_S = 5.0          # a commit not in the bucket by then counts as a timeout
READY_TIMEOUT_S = 60.0       # sidecar start: first snapshot in the bucket
DRAIN_TIMEOUT_S = 300.0      # replica catching up after the writer ends
STOP_TIMEOUT_S = 120.0       # SIGTERM to exit
SNAPSHOT_TIMEOUT_S = 1800.0  # the big snapshot appearing in the bucket
POLL_S = {"1s": 0.005, "0": 0.002}   # pause between two bucket polls in the lag phase


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
    n, d = table_digest(conn, "SELECT id, v FROM t ORDER BY id")
    return {"t_rows": n, "t_sha256": d}


def writer_main(argv):
    """The application: a separate process, Python's sqlite3 with its defaults."""
    mode, path = argv[0], argv[1]
    p = json.loads(argv[2])
    conn = sqlite3.connect(path)  # default isolation_level, busy timeout 5 s
    emit({"event": "ready"})
    rng = random.Random(20240601)
    if mode == "steady":
        # One row every write_every_ms on an absolute schedule (no drift),
        # for steady_s seconds.
        every = p["write_every_ms"] / 1000
        t0 = now()
        n, t_first, t_last, late = 0, None, None, 0
        next_t = t0
        while next_t - t0 < p["steady_s"]:
            conn.execute("INSERT INTO t (v) VALUES (?)", (rng.randbytes(p["row_bytes"]),))
            conn.commit()
            t_last = now()
            if t_first is None:
                t_first = t_last
            n += 1
            next_t += every
            d = next_t - now()
            if d > 0:
                time.sleep(d)
            else:
                late += 1
        emit({"event": "done", "commits": n, "t_first": t_first, "t_last": t_last, "late": late})
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


WRITERS = []  # every writer started, killed at exit whatever happened


class Writer:
    def __init__(self, mode, db, params):
        # Its own session: a Ctrl-C on the terminal reaches the measurer only,
        # which then stops the writer itself.
        self.proc = subprocess.Popen(
            [PYTHON, os.path.abspath(__file__), "_writer", mode, db, json.dumps(params)],
            stdin=subprocess.PIPE if mode == "lag" else subprocess.DEVNULL,
            stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
        WRITERS.append(self)

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


# ------------------------------------------------------------- S3 client ----

def _q(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


class S3:
    """A minimal S3 client (SigV4, path style) for polling the bucket
    directly, not through the counting proxy. One connection per request: on
    a reused connection rgw's answer to a LIST or a ranged GET comes about
    40 ms late (beast writes headers and body separately without
    TCP_NODELAY, and the second write waits for our delayed ACK), which
    would add a fixed 40 ms to every lag sample."""

    EMPTY_SHA = hashlib.sha256(b"").hexdigest()

    def __init__(self, port, bucket):
        self.host, self.port, self.bucket = "127.0.0.1", port, bucket
        self.conn = None
        self.calls = 0
        self.call_s = 0.0

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _headers(self, method, path, query):
        t = datetime.datetime.now(datetime.timezone.utc)
        amz = t.strftime("%Y%m%dT%H%M%SZ")
        day = amz[:8]
        h = {"host": f"{self.host}:{self.port}", "x-amz-date": amz,
             "x-amz-content-sha256": self.EMPTY_SHA}
        names = sorted(h)
        canon_q = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(query.items()))
        creq = "\n".join([method, _q(path, safe="/-_.~"), canon_q,
                          "".join(f"{k}:{h[k]}\n" for k in names), ";".join(names), self.EMPTY_SHA])
        scope = f"{day}/{REGION}/s3/aws4_request"
        sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + SECRET_KEY).encode()
        for part in (day, REGION, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        h["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
                              f"SignedHeaders={';'.join(names)}, Signature={sig}")
        h["Host"] = h.pop("host")
        return h

    def request(self, method, key, query=None, extra=None):
        query = query or {}
        path = f"/{self.bucket}" + (f"/{key}" if key else "")
        url = _q(path, safe="/-_.~") + ("?" + "&".join(f"{_q(k)}={_q(v)}" for k, v in
                                                      sorted(query.items())) if query else "")
        t0 = now()
        for attempt in (1, 2):
            headers = self._headers(method, path, query)
            headers.update(extra or {})
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.conn.request(method, url, headers=headers)
                resp = self.conn.getresponse()
                body = resp.read()
                self.close()
                break
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt == 2:
                    raise BenchError(f"S3 {method} {path}: {e}")
        self.calls += 1
        self.call_s += now() - t0
        if resp.status >= 300:
            raise BenchError(f"S3 {method} {path}: HTTP {resp.status}: {body[:300]!r}")
        return body

    def list(self, prefix, start_after=None):
        """[(key, size)] of every object under prefix (after start_after)."""
        out, token = [], None
        while True:
            q = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                q["continuation-token"] = token
            elif start_after:
                q["start-after"] = start_after
            root = ET.fromstring(self.request("GET", None, q))
            for c in root.findall("{*}Contents"):
                out.append((c.findtext("{*}Key"), int(c.findtext("{*}Size"))))
            if root.findtext("{*}IsTruncated") != "true":
                return out
            token = root.findtext("{*}NextContinuationToken")

    def head_bytes(self, key, n):
        return self.request("GET", key, extra={"Range": f"bytes=0-{n - 1}"})


def lz4_content_size(head, what):
    """Decompressed length from an LZ4 frame header's content-size field."""
    if len(head) < 14:
        raise BenchError(f"{what}: short lz4 frame header")
    magic, flg = struct.unpack_from("<IB", head)
    if magic != LZ4_MAGIC:
        raise BenchError(f"{what}: not an lz4 frame (magic {magic:#x})")
    if not flg & 0x08:
        raise BenchError(f"{what}: lz4 frame without content size")
    return struct.unpack_from("<Q", head, 6)[0]


def parse_segment(name):
    """IIIIIIII_OOOOOOOO.wal.lz4 -> (index, offset), else None."""
    if not name.endswith(".wal.lz4"):
        return None
    parts = name[:-len(".wal.lz4")].split("_")
    if len(parts) != 2 or len(parts[0]) != 8:
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        return None


class S3Segments:
    """Coverage of the replica's segments in the bucket: lists only the keys
    after the last one seen, reads each new segment's frame header once."""

    def __init__(self, s3, prefix):
        self.s3, self.prefix = s3, prefix
        self.last = {}   # (gen, index) -> last key seen
        self.best = {}   # (gen, index) -> highest end offset covered

    def coverage(self, gen, index):
        k = (gen, index)
        pfx = f"{self.prefix}/generations/{gen}/wal/{index:08x}_"
        for key, _ in self.s3.list(pfx, self.last.get(k)):
            self.last[k] = max(self.last.get(k, ""), key)
            pos = parse_segment(key.rsplit("/", 1)[1])
            if pos is None or pos[0] != index:
                continue
            n = lz4_content_size(self.s3.head_bytes(key, 14), key)
            self.best[k] = max(self.best.get(k, 0), pos[1] + n)
        return self.best.get(k, 0)


def count_objects(s3, prefix):
    objs = s3.list(prefix + "/")
    return len(objs), sum(size for _, size in objs)


# ------------------------------------------------------ counting proxy ----

class RequestParser:
    """Frames the client-to-server byte stream of HTTP/1.1 into requests
    (request line and headers, then a Content-Length or chunked body) and
    reports each request line. Never changes the bytes."""

    MAX_HEAD = 64 * 1024

    def __init__(self, on_request):
        self.on_request = on_request
        self.state = "head"
        self.buf = b""
        self.remaining = 0
        self.broken = False
        self.count = 0

    def feed(self, data):
        if self.broken:
            return
        i, n = 0, len(data)
        while i < n and not self.broken:
            if self.state == "body":
                take = min(self.remaining, n - i)
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "head"
                continue
            if self.state == "chunk-data":  # chunk bytes plus their CRLF
                take = min(self.remaining, n - i)
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "chunk-size"
                continue
            # A line-oriented state: collect bytes up to the delimiter.
            self.buf += data[i:]
            i = n
            self._lines()
            if self.state in ("body", "chunk-data") and self.buf:
                rest, self.buf = self.buf, b""
                self.feed(rest)
                return

    def _lines(self):
        while not self.broken:
            if self.state == "head":
                self.buf = self.buf.lstrip(b"\r\n")  # CRLFs between requests are allowed
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > self.MAX_HEAD:
                        self.broken = True
                    return
                head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
                lines = head.split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                    self.broken = True
                    return
                hdrs = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                self.count += 1
                self.on_request(parts[0], parts[1])
                if "chunked" in hdrs.get("transfer-encoding", "").lower():
                    self.state = "chunk-size"
                elif int(hdrs.get("content-length", "0") or 0) > 0:
                    self.state, self.remaining = "body", int(hdrs["content-length"])
                    return
            elif self.state in ("chunk-size", "trailer"):
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if self.state == "trailer":
                    if line == b"":
                        self.state = "head"
                    continue
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.broken = True
                    return
                if size == 0:
                    self.state = "trailer"
                else:
                    self.state, self.remaining = "chunk-data", size + 2
                    return
            else:
                return


def classify(method, target):
    """PUT/part PUT/LIST/... from the method and the query string."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query, keep_blank_values=True)
    if method == "PUT":
        return "PUT part" if "partNumber" in q else "PUT object"
    if method == "GET":
        return "GET list" if "list-type" in q or target.rstrip("/").count("/") <= 1 else "GET object"
    if method == "POST":
        if "uploads" in q:
            return "POST start multipart"
        if "uploadId" in q:
            return "POST complete multipart"
        if "delete" in q:
            return "POST delete objects"
        return "POST other"
    return method


class CountingProxy:
    """A threading TCP reverse proxy to 127.0.0.1:upstream that forwards bytes
    both ways unchanged (so the SigV4 signatures stay valid) and records each
    HTTP request it sees: (monotonic time, method, target). With delay_s,
    holds the bytes that start a request that long before passing them on:
    a crude stand-in for the round trip to a distant S3."""

    def __init__(self, upstream_port, delay_s=0.0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay_s = delay_s
        self.down = False  # set_down(): every request answered 503 SlowDown here
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []
        self.connections = 0
        self.parse_failures = 0
        self.socks = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _record(self, method, target):
        with self.lock:
            self.requests.append((now(), method, target))

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.down:
                threading.Thread(target=self._refuse, args=(c,), daemon=True).start()
                continue
            try:
                u = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                if self.closed:
                    c.close()
                    u.close()
                    return
                self.connections += 1
                self.socks.update((c, u))
            conn = {"open": 2}
            parser = RequestParser(self._record)
            threading.Thread(target=self._pump, args=(c, u, parser, conn), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, None, conn), daemon=True).start()

    def _pump(self, src, dst, parser, conn):
        try:
            while True:
                data = src.recv(256 * 1024)
                if not data:
                    break
                if parser is not None:
                    before = parser.count
                    parser.feed(data)
                    if self.delay_s and parser.count != before:
                        time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            with self.lock:
                if parser is not None and parser.broken:
                    self.parse_failures += 1
                conn["open"] -= 1
                last = conn["open"] == 0
                if last:
                    self.socks.discard(src)
                    self.socks.discard(dst)
            if last:
                src.close()
                dst.close()

    def set_down(self, down):
        """An outage (down) or its end: while down, each connection gets one
        503 SlowDown for its first whole request and is closed; going down
        cuts the connections already open (the pooled ones)."""
        with self.lock:
            self.down = down
            socks = list(self.socks) if down else []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _refuse(self, c):
        body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
                b"<Message>outage</Message></Error>")
        parser = RequestParser(self._record)
        try:
            c.settimeout(30)
            while True:
                data = c.recv(256 * 1024)
                if not data:
                    return
                parser.feed(data)
                if parser.broken or (parser.count >= 1 and parser.state == "head"):
                    break
            c.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                      b"Connection: close\r\nContent-Length: " + str(len(body)).encode() +
                      b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            c.close()

    def all_times(self, t0, t1):
        with self.lock:
            return [t for t, _, _ in self.requests if t0 <= t < t1]

    def between(self, t0, t1):
        with self.lock:
            return [(m, tgt) for t, m, tgt in self.requests if t0 <= t < t1]

    def times(self, t0, t1, method):
        with self.lock:
            return [t for t, m, _ in self.requests if t0 <= t < t1 and m == method]

    def close(self):
        with self.lock:
            self.closed = True
            socks, self.socks = list(self.socks), set()
        try:
            self.lsock.close()
        except OSError:
            pass
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ------------------------------------------------------------------ rgw ----

def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def aws_env(directory):
    """Our keys and nothing of the user's AWS configuration or Python setup."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({
        "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.path.join(directory, "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(directory, "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "",
    })
    return env


def sidecar_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "LITESTREAM_"))}
    env["LITESTREAM_ACCESS_KEY_ID"] = ACCESS_KEY
    env["LITESTREAM_SECRET_ACCESS_KEY"] = SECRET_KEY
    return env


class Rgw:
    def __init__(self, directory):
        self.dir = directory
        self.port = None
        self.started = False

    def start(self):
        for attempt in range(2):
            port, mon_port = free_ports(2)
            self.started = True  # from here on, rgw-down.sh runs at the end
            # Its own session: the daemons it forks must not get the
            # terminal's SIGINT; they are stopped by rgw-down.sh.
            proc = subprocess.Popen(["bash", RGW_UP, self.dir, str(port), str(mon_port), ACCESS_KEY,
                                     SECRET_KEY], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, start_new_session=True)
            try:
                out, err = proc.communicate(timeout=300)
            except BaseException:
                # Let it finish (each step has its own timeout) so that every
                # daemon it started has its pid file for rgw-down.sh.
                try:
                    proc.wait(timeout=200)
                except BaseException:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                raise
            if proc.returncode == 0:
                self.port = port
                return
            if "already in use" not in err or attempt == 1:
                raise BenchError(f"rgw-up.sh exited {proc.returncode}:\n{out}{err}")

    def stop(self):
        if self.started:
            subprocess.run(["bash", RGW_DOWN, self.dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
            self.started = False

    def create_bucket(self, bucket):
        r = subprocess.run([AWS, "--endpoint-url", f"http://127.0.0.1:{self.port}", "s3api",
                            "create-bucket", "--bucket", bucket], env=aws_env(self.dir),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if r.returncode != 0:
            raise BenchError(f"creating bucket {bucket} failed:\n{r.stdout}")


# -------------------------------------------------------------- sidecar ----

def replica_url(port, prefix):
    return (f"s3://{BUCKET}/{prefix}?endpoint=http://127.0.0.1:{port}&region={REGION}")


def shadow_position(db):
    """(generation, newest shadow index, its size) from DB_DIR/.NAME-litestream.
    Ours makes no shadow WAL file before the application's first write: a
    generation without one counts as index 0, size 0."""
    meta = os.path.join(os.path.dirname(db), "." + os.path.basename(db) + "-litestream")
    try:
        with open(os.path.join(meta, "generation")) as f:
            gen = f.read().strip()
        wdir = os.path.join(meta, "generations", gen, "wal")
        names = os.listdir(wdir) if os.path.isdir(wdir) else []
        idxs = [int(n[:8], 16) for n in names if n.endswith(".wal") and len(n) == 12]
        if not idxs:
            return gen, 0, 0
        idx = max(idxs)
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
    return hdr[12:24] if len(hdr) == 32 else None


# "2026-11-25T11:07:59.669Z DEBUG replica s3: PUT generations/...: 200 in 35 ms (attempt 1)"
REQ_LINE = re.compile(r"^(\S+Z) DEBUG +replica [^:]*: (\S+) (\S+?)(?: \(([^)]*)\))?: (-?\d+)"
                      r"(?: (\S+))? in (\d+) ms \(attempt (\d+)\)$")


def log_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class LoggedRequest:
    def __init__(self, m):
        self.wall = log_time(m.group(1))
        self.op, self.key, self.what = m.group(2), m.group(3), m.group(4) or ""
        self.status, self.code = int(m.group(5)), m.group(6) or ""
        self.ms, self.attempt = int(m.group(7)), int(m.group(8))

    def kind(self):
        if self.op == "PUT":
            return "PUT part" if self.what.startswith("part ") else "PUT object"
        if self.op == "LIST":
            return "GET list"
        if self.op == "GET":
            return "GET object"
        if self.op == "POST":
            return ("POST start multipart" if "start" in self.what else
                    "POST complete multipart" if "complete" in self.what else "POST other")
        if self.op == "DELETE":
            return "DELETE" if "abort" in self.what else "POST delete objects"
        return self.op


SIDECARS = []  # every sidecar started, killed at exit whatever happened


class Sidecar:
    """`litestream replicate -config FILE` with log-level debug, one database,
    one S3 replica; its own process group."""

    def __init__(self, binary, work, sockdir, name, db, url, sync_interval=None):
        self.binary, self.db, self.name = binary, db, name
        self.log_path = os.path.join(work, "litestream.log")
        self.config = os.path.join(work, "litestream.conf")
        lines = ["[litestream]", "log-level = debug",
                 f"socket = {os.path.join(sockdir, name + '.sock')}", "",
                 "[db app]", f"path = {db}", "",
                 "[replica s3]", "db = app", f"url = {url}"]
        if sync_interval is not None:
            lines.append(f"sync-interval = {sync_interval}")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(self.log_path, "wb")
        self.t_start = now()
        self.wall_start = time.time()
        self.proc = subprocess.Popen([binary, "replicate", "-config", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=sidecar_env(),
                                     start_new_session=True)
        self.pid = self.proc.pid
        SIDECARS.append(self)

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise BenchError(f"sidecar {self.name} exited early with {self.proc.returncode}\n"
                             f"{self.log_tail()}")

    def wait_ready(self, s3, prefix):
        """Until the first snapshot is in the bucket and the shadow WAL exists."""
        deadline = now() + READY_TIMEOUT_S
        while now() < deadline:
            self.check_alive()
            if any(k.endswith(".snapshot.lz4") for k, _ in s3.list(prefix + "/generations/")):
                if shadow_position(self.db) is not None:
                    return
            time.sleep(0.02)
        raise BenchError(f"sidecar not ready after {READY_TIMEOUT_S:.0f} s\n{self.log_tail()}")

    def wait_caught_up(self, segs):
        """Until the bucket covers the newest shadow WAL, twice 200 ms apart.
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
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        hwm = 0
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        return cpu, hwm

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

    def kill(self):
        if self.proc.returncode is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def lines(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()

    def log_tail(self, n=20):
        try:
            return "\n".join("  sidecar: " + l for l in self.lines()[-n:])
        except OSError:
            return ""

    def problems(self):
        return [l for l in self.lines() if " WARN " in l or " ERROR " in l]

    def logged_requests(self):
        out = []
        for line in self.lines():
            m = REQ_LINE.match(line)
            if m:
                out.append(LoggedRequest(m))
        return out

    def mono_to_wall(self, t):
        return self.wall_start + (t - self.t_start)


def kinds(items):
    d = {}
    for k in items:
        d[k] = d.get(k, 0) + 1
    return dict(sorted(d.items()))


def fmt_kinds(d):
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def create_db(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    conn.commit()
    conn.close()


def verify_restore(binary, url, out, expected):
    """Restores the replica and compares it with the writer's summary."""
    r = subprocess.run([binary, "restore", "-o", out, url], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=sidecar_env())
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
    return got


def percentile(sorted_vals, q):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, -(-q * len(sorted_vals) // 100) - 1))
    return sorted_vals[int(k)]


# ------------------------------------------------------------- phases ----

class Ctx:
    def __init__(self, binary, root, sockdir, rgw, s3, params, latency_ms=0):
        self.binary, self.root, self.sockdir = binary, root, sockdir
        self.rgw, self.s3, self.params = rgw, s3, params
        self.latency_ms = latency_ms


def phase_requests(ctx):
    """Steady writes then idle, the sidecar behind the counting proxy."""
    p = ctx.params
    work = os.path.join(ctx.root, "requests")
    os.mkdir(work)
    db = os.path.join(work, "app.db")
    create_db(db)
    prefix = "requests"
    proxy = CountingProxy(ctx.rgw.port, ctx.latency_ms / 1000)
    side = writer = None
    try:
        side = Sidecar(ctx.binary, work, ctx.sockdir, "requests", db,
                       replica_url(proxy.port, prefix))
        side.wait_ready(ctx.s3, prefix)
        segs = S3Segments(ctx.s3, prefix)
        side.wait_caught_up(segs)
        t_ready = now() - side.t_start
        objs0 = count_objects(ctx.s3, prefix)
        writer = Writer("steady", db, p)
        writer.event("ready")
        done = writer.event("done")
        summary = writer.event("summary")["summary"]
        writer.finish()
        t_first, t_last = done["t_first"], done["t_last"]
        t_caught = side.wait_caught_up(segs)
        objs1 = count_objects(ctx.s3, prefix)
        t_idle_end = t_caught + p["idle_s"]
        while now() < t_idle_end:
            side.check_alive()
            time.sleep(min(0.5, max(0.0, t_idle_end - now())))
        objs2 = count_objects(ctx.s3, prefix)
        cpu, hwm = side.usage()
        t_stop = now()
        side.stop()
        problems = side.problems()
        logged = side.logged_requests()
        verify_restore(ctx.binary, replica_url(ctx.rgw.port, prefix),
                       os.path.join(work, "restored.db"), summary)
    finally:
        if writer is not None:
            writer.kill()
        if side is not None:
            side.kill()
        proxy.close()

    def window(t0, t1):
        prox = [classify(m, tgt) for m, tgt in proxy.between(t0, t1)]
        w0, w1 = side.mono_to_wall(t0), side.mono_to_wall(t1)
        logs = [r for r in logged if w0 <= r.wall < w1]
        return {"proxy": kinds(prox), "log": kinds(r.kind() for r in logs),
                "log_retries": sum(1 for r in logs if r.attempt > 1),
                "log_errors": sum(1 for r in logs if not 200 <= r.status < 300)}

    def puts(d):
        return sum(v for k, v in d.items() if k.startswith("PUT"))

    steady_s, drain_s, idle_s = t_last - t_first, t_caught - t_last, p["idle_s"]
    res = {
        "ready_s": t_ready, "commits": done["commits"], "late": done["late"],
        "steady_s": steady_s, "drain_s": drain_s, "idle_s": idle_s,
        "startup": window(side.t_start, t_first), "steady": window(t_first, t_last),
        "drain": window(t_last, t_caught), "idle": window(t_caught, t_idle_end),
        "after": window(t_idle_end, t_stop + 3600),
        "objects": [objs0, objs1, objs2], "connections": proxy.connections,
        "parse_failures": proxy.parse_failures, "cpu_s": cpu, "hwm_kib": hwm,
        "problems": problems, "rows": summary["t_rows"],
    }
    res["steady_puts"] = puts(res["steady"]["proxy"])
    # With a sync timer, PUTs should come one per tick; count those that
    # follow the previous PUT by less than a quarter of the period.
    pt = proxy.times(t_first, t_last, "PUT")
    res["steady_puts_close"] = sum(1 for a, b in zip(pt, pt[1:]) if b - a < 0.25)
    res["steady_puts_log"] = puts(res["steady"]["log"])
    res["steady_reqs"] = sum(res["steady"]["proxy"].values())
    res["idle_puts"] = puts(res["idle"]["proxy"])
    res["idle_puts_log"] = puts(res["idle"]["log"])
    res["idle_reqs"] = sum(res["idle"]["proxy"].values())
    res["steady_puts_per_min"] = res["steady_puts"] / steady_s * 60
    res["steady_reqs_per_min"] = res["steady_reqs"] / steady_s * 60
    res["idle_puts_per_min"] = res["idle_puts"] / idle_s * 60
    res["idle_reqs_per_min"] = res["idle_reqs"] / idle_s * 60
    return res


def phase_lag(ctx, label, sync_interval, n_samples):
    """Commit one row, poll the bucket until a segment covers it, pause, repeat."""
    p = ctx.params
    work = os.path.join(ctx.root, "lag-" + label)
    os.mkdir(work)
    db = os.path.join(work, "app.db")
    create_db(db)
    prefix = "lag-" + label
    sync_ms = {"1s": 1000, "0": 0}[label]
    side = Sidecar(ctx.binary, work, ctx.sockdir, "lag-" + label, db,
                   replica_url(ctx.rgw.port, prefix), sync_interval)
    writer = None
    lags, skipped, timeouts = [], 0, 0
    rng = random.Random(4242)
    poll = POLL_S[label]
    try:
        side.wait_ready(ctx.s3, prefix)
        segs = S3Segments(ctx.s3, prefix)
        side.wait_caught_up(segs)
        writer = Writer("lag", db, p)
        writer.event("ready")
        calls0, call_s0 = ctx.s3.calls, ctx.s3.call_s
        prev_size = None
        t_begin = now()
        for _ in range(n_samples):
            before = shadow_position(db)
            salts_before = wal_salts(db)
            writer.send("go")
            ev = writer.event("commit")
            t_commit, size = ev["t"], ev["wal_size"]
            now_pos = shadow_position(db)
            gen, idx = now_pos[:2] if now_pos else (None, None)
            restarted = (before is None or now_pos is None or before[:2] != (gen, idx)
                         or wal_salts(db) != salts_before
                         or (prev_size is not None and size <= prev_size))
            prev_size = size
            if not restarted:
                deadline = t_commit + LAG_TIMEOUT_S
                while True:
                    if segs.coverage(gen, idx) >= size:
                        lags.append((now() - t_commit) * 1000)
                        break
                    pos = shadow_position(db)
                    if pos is not None and pos[:2] != (gen, idx):
                        skipped += 1
                        break
                    if now() > deadline:
                        timeouts += 1
                        lags.append(LAG_TIMEOUT_S * 1000)
                        break
                    time.sleep(poll)
            else:
                skipped += 1
            side.check_alive()
            # With a sync timer, a random pause puts the next commit at a
            # uniformly random point of the timer's period; otherwise every
            # commit would land just after a tick and wait a whole period.
            time.sleep((p["lag_pause_ms"] + rng.uniform(0, sync_ms)) / 1000)
        t_end = now()
        polls = ctx.s3.calls - calls0
        poll_ms = (ctx.s3.call_s - call_s0) / polls * 1000 if polls else None
        writer.send("quit")
        summary = writer.event("summary")["summary"]
        writer.finish()
        side.wait_caught_up(segs)
        cpu, hwm = side.usage()
        side.stop()
        problems = side.problems()
        w0, w1 = side.mono_to_wall(t_begin), side.mono_to_wall(t_end)
        during = [r for r in side.logged_requests() if w0 <= r.wall < w1]
        verify_restore(ctx.binary, replica_url(ctx.rgw.port, prefix),
                       os.path.join(work, "restored.db"), summary)
    finally:
        if writer is not None:
            writer.kill()
        side.kill()
    lags.sort()
    return {
        "label": label, "samples": len(lags), "skipped": skipped, "timeouts": timeouts,
        "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99),
        "min_ms": lags[0] if lags else None, "max_ms": lags[-1] if lags else None,
        "mean_ms": statistics.fmean(lags) if lags else None,
        "poll_ms": poll_ms, "polls": polls, "seconds": t_end - t_begin,
        "requests": kinds(r.kind() for r in during),
        "put_ms": statistics.median([r.ms for r in during if r.op == "PUT"] or [0]),
        "cpu_s": cpu, "hwm_kib": hwm, "problems": problems, "rows": summary["t_rows"],
    }


def control_post(sock_path, target, timeout):
    """POST on the sidecar's control socket: (status, seconds it took)."""
    t0 = now()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        c.connect(sock_path)
        c.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                  f"Connection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        c.close()
    return int(data.split(b" ", 2)[1]), now() - t0


def segment_gaps(s3, prefix):
    """Every WAL index's segments must tile it: each starts where the one
    before it ended. Returns (segments, [problems])."""
    by_index = {}
    for key, _ in s3.list(prefix + "/generations/"):
        parts = key.split("/")
        pos = parse_segment(parts[-1])
        if pos is not None:
            by_index.setdefault((parts[-3], pos[0]), []).append((pos[1], key))
    problems, n = [], 0
    for (gen, index), segs in sorted(by_index.items()):
        end = 0
        for off, key in sorted(segs):
            n += 1
            if off != end:
                problems.append(f"{gen} index {index}: segment at {off}, expected {end}")
            end = off + lz4_content_size(s3.head_bytes(key, 14), key)
    return n, problems


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))


def dir_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


def phase_outage(ctx, minutes):
    """Steady writes with the S3 endpoint answering 503 to every request
    for `minutes`: requests per minute, the WAL, the shadow WAL and the
    sidecar's memory while it lasts, then the time to catch up and a
    restore equal to the source."""
    p = dict(ctx.params)
    lead, tail = 10.0, 10.0
    outage_s = minutes * 60
    p["steady_s"] = lead + outage_s + tail
    work = os.path.join(ctx.root, "outage")
    os.mkdir(work)
    db = os.path.join(work, "app.db")
    create_db(db)
    prefix = "outage"
    proxy = CountingProxy(ctx.rgw.port)
    side = writer = None
    samples, probes = [], []
    try:
        side = Sidecar(ctx.binary, work, ctx.sockdir, "outage", db, replica_url(proxy.port, prefix))
        sock = os.path.join(ctx.sockdir, "outage.sock")
        side.wait_ready(ctx.s3, prefix)
        segs = S3Segments(ctx.s3, prefix)
        side.wait_caught_up(segs)
        writer = Writer("steady", db, p)
        writer.event("ready")
        time.sleep(lead)
        proxy.set_down(True)
        t_down = now()
        shadow = os.path.join(work, ".app.db-litestream")
        next_probe = t_down + 30
        while now() < t_down + outage_s:
            side.check_alive()
            wal = os.path.join(work, "app.db-wal")
            samples.append((now() - t_down, rss_kib(side.pid),
                            os.stat(wal).st_size if os.path.exists(wal) else 0, dir_bytes(shadow)))
            if now() >= next_probe:
                probes.append(control_post(sock, "/v1/dbs/app/sync?wait=1&timeout=5s", 30))
                next_probe += 120
            time.sleep(min(5.0, max(0.0, t_down + outage_s - now())))
        proxy.set_down(False)
        t_up = now()
        writer.event("done")
        summary = writer.event("summary")["summary"]
        writer.finish()
        t_caught = side.wait_caught_up(segs)
        cpu, hwm = side.usage()
        side.stop()
        problems = side.problems()
        n_segs, gaps = segment_gaps(ctx.s3, prefix)
        verify_restore(ctx.binary, replica_url(ctx.rgw.port, prefix),
                       os.path.join(work, "restored.db"), summary)
    finally:
        if writer is not None:
            writer.kill()
        if side is not None:
            side.kill()
        proxy.close()
    per_min = [len(proxy.all_times(t_down + 60 * m, min(t_down + 60 * (m + 1), t_up)))
               for m in range(max(1, int(round(outage_s / 60))))]
    return {"minutes": minutes, "per_min": per_min, "samples": samples, "probes": probes,
            "catch_up_s": t_caught - t_up, "cpu_s": cpu, "hwm_kib": hwm,
            "segments": n_segs, "gaps": gaps, "errors": len([l for l in problems if " ERROR " in l]),
            "rows": summary["t_rows"]}


def print_outage(o):
    rss = [s[1] for s in o["samples"]]
    wal = [s[2] for s in o["samples"]]
    shadow = [s[3] for s in o["samples"]]
    print(f"\nResults: {o['minutes']:g} min outage (every request answered 503 SlowDown by the proxy)")
    print(f"  requests per minute       : {', '.join(str(n) for n in o['per_min'])} "
          f"(max {max(o['per_min'])})")
    print(f"  sync?wait=1&timeout=5s    : " + ", ".join(f"{st} in {t:.1f} s" for st, t in o["probes"]))
    print(f"  sidecar RSS during        : first {rss[0] / 1024:.1f} MiB, min {min(rss) / 1024:.1f}, "
          f"max {max(rss) / 1024:.1f}, last {rss[-1] / 1024:.1f} MiB; peak (VmHWM) {o['hwm_kib'] / 1024:.1f} MiB")
    print(f"  database -wal during      : max {max(wal) / MiB:.1f} MiB, last {wal[-1] / MiB:.1f} MiB")
    print(f"  shadow WAL dir during     : first {shadow[0] / MiB:.1f} MiB, last {shadow[-1] / MiB:.1f} MiB "
          f"(the backlog held on local disk)")
    print(f"  catch-up after the outage : {o['catch_up_s']:.1f} s; {o['segments']} segments, "
          f"{len(o['gaps'])} gaps or overlaps; {o['errors']} ERROR lines logged; restore equal "
          f"({o['rows']} rows)")
    for g in o["gaps"][:10]:
        print("    " + g)
    print(f"  sidecar CPU               : {o['cpu_s']:.2f} s over the whole phase")
    print(json.dumps({"bench": "s3-outage", "minutes": o["minutes"], "requests_per_min": o["per_min"],
                      "probes": o["probes"], "rss_first_kib": rss[0], "rss_last_kib": rss[-1],
                      "rss_max_kib": max(rss), "wal_max_bytes": max(wal),
                      "shadow_last_bytes": shadow[-1], "catch_up_s": round(o["catch_up_s"], 2),
                      "segments": o["segments"], "gaps": len(o["gaps"]), "errors": o["errors"]}))


def build_db(path, size_mb):
    """A database file of about size_mb MiB: 2000-byte rows (two per 4 KiB
    page), each half random and half zeros (about what real pages compress
    to), checkpointed into the database file."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    rows = size_mb * MiB // 4096 * 2
    conn.execute("BEGIN")
    for i in range(rows):
        conn.execute("INSERT INTO t (v) VALUES (CAST(randomblob(1000) || zeroblob(1000) AS BLOB))")
        if i % 20000 == 19999:
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("BEGIN")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    summary = db_summary(conn)
    conn.close()
    return summary


def run_timed(cmd, env=None):
    """Runs cmd; returns (seconds, CPU seconds, max RSS KiB, output)."""
    t0 = now()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    secs = now() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                         f"{out.decode(errors='replace')}")
    return secs, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, out


def single_get(port, bucket, key, out):
    """Seconds to GET key whole on one connection into out (fsynced); the
    file is removed afterwards."""
    s3 = S3(port, bucket)
    path = f"/{bucket}/{key}"
    t0 = now()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", _q(path, safe="/-_.~"), headers=s3._headers("GET", path, {}))
        resp = conn.getresponse()
        if resp.status != 200:
            raise BenchError(f"single GET {key}: HTTP {resp.status}: {resp.read()[:300]!r}")
        with open(out, "wb") as f:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    finally:
        conn.close()
    elapsed = now() - t0
    os.unlink(out)
    return elapsed


def phase_snapshot_restore(ctx, size_mb):
    work = os.path.join(ctx.root, "snapshot")
    os.mkdir(work)
    db = os.path.join(work, "app.db")
    prefix = "snapshot"
    t0 = now()
    summary = build_db(db, size_mb)
    build_s = now() - t0
    db_bytes = os.path.getsize(db)
    subprocess.run(["sync"])
    side = Sidecar(ctx.binary, work, ctx.sockdir, "snapshot", db, replica_url(ctx.rgw.port, prefix))
    try:
        deadline = side.t_start + SNAPSHOT_TIMEOUT_S
        snap = None
        while snap is None:
            side.check_alive()
            for k, size in ctx.s3.list(prefix + "/generations/"):
                if k.endswith(".snapshot.lz4"):
                    snap = (k, size)
            if snap is None:
                if now() > deadline:
                    raise BenchError(f"no snapshot after {SNAPSHOT_TIMEOUT_S:.0f} s\n{side.log_tail()}")
                time.sleep(0.02)
        t_visible = now() - side.t_start
        cpu, hwm = side.usage()
        side.stop()
        problems = side.problems()
        logged = side.logged_requests()
        t_upload = t_stored = None
        for line in side.lines():
            m = re.match(r"^(\S+Z) DEBUG .*: uploading \S+snapshot\.lz4 \((\d+) bytes\) in (\d+) parts", line)
            if m and t_upload is None:
                t_upload = log_time(m.group(1)) - side.wall_start
            m = re.match(r"^(\S+Z) DEBUG .*: stored \S+snapshot\.lz4 in (\d+) parts", line)
            if m and t_stored is None:
                t_stored = log_time(m.group(1)) - side.wall_start
    finally:
        side.kill()
    snap_reqs = [r for r in logged if "snapshot" in r.key]
    parts = [r for r in snap_reqs if r.kind() == "PUT part"]
    res = {
        "size_mb": size_mb, "db_bytes": db_bytes, "build_s": build_s, "rows": summary["t_rows"],
        "snapshot_key": snap[0], "snapshot_bytes": snap[1], "visible_s": t_visible,
        "upload_mb_s": db_bytes / MB / t_visible,
        "t_upload_start_s": t_upload, "t_stored_s": t_stored,
        "parts": sum(1 for r in parts if r.attempt == 1), "part_retries": sum(1 for r in parts if r.attempt > 1),
        "part_ms_median": statistics.median([r.ms for r in parts]) if parts else None,
        "snapshot_requests": kinds(r.kind() for r in snap_reqs),
        "cpu_s": cpu, "hwm_kib": hwm, "problems": problems,
    }

    # Restore, against cp of the same file (page cache warm for both: the
    # database was just written and read, and cp goes first).
    url = replica_url(ctx.rgw.port, prefix)
    subprocess.run(["sync"])
    cp_out = os.path.join(work, "copy.db")
    cp_s, _, _, _ = run_timed(["cp", db, cp_out])
    t0 = now()
    subprocess.run(["sync", cp_out])
    cp_sync_s = cp_s + (now() - t0)
    os.unlink(cp_out)
    # The other baseline: the snapshot object fetched as one streamed GET
    # on one connection (what restore did before ranged GETs), written to
    # a file and fsynced.
    one_get_s = single_get(ctx.rgw.port, BUCKET, snap[0], os.path.join(work, "one-get.lz4"))
    out = os.path.join(work, "restored.db")
    rs_s, rs_cpu, rs_rss, _ = run_timed([ctx.binary, "restore", "-o", out, url], env=sidecar_env())
    conn = sqlite3.connect(out)
    try:
        got = db_summary(conn)
    finally:
        conn.close()
    if got != summary:
        raise BenchError(f"REPLICA IS WRONG: restored {got}, source {summary}")
    res.update({
        "restore_s": rs_s, "restore_mb_s": db_bytes / MB / rs_s, "restore_cpu_s": rs_cpu,
        "restore_rss_kib": rs_rss, "restored_bytes": os.path.getsize(out),
        "cp_s": cp_s, "cp_mb_s": db_bytes / MB / cp_s, "cp_sync_s": cp_sync_s,
        "cp_sync_mb_s": db_bytes / MB / cp_sync_s,
    })
    res["one_get_s"] = one_get_s
    res["one_get_mb_s"] = snap[1] / MB / one_get_s
    res["restore_vs_one_get"] = one_get_s / rs_s
    res["restore_vs_cp"] = res["restore_mb_s"] / res["cp_mb_s"]
    res["restore_vs_cp_sync"] = res["restore_mb_s"] / res["cp_sync_mb_s"]
    os.unlink(out)
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


def first_line(cmd):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        return (r.stdout.strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_header(binary, root, params, size_mb, quick):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    dev, mnt, fstype = fs_of(root)
    info = {
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "mem": mem,
        "kernel": platform.release(), "fs": fstype, "loadavg": loadavg(),
        "litestream": first_line([binary, "version"]),
        "radosgw": first_line(["radosgw", "--version"]),
        "aws": first_line([AWS, "--version"]), "sqlite": sqlite3.sqlite_version,
    }
    print(f"litestream S3 benchmark{' (--quick)' if quick else ''}")
    print(f"  machine : nproc {info['nproc']}, {cpu}, {mem} RAM, Linux {info['kernel']}")
    print(f"  load    : {info['loadavg']} (1/5/15 min load average at start; other work skews the figures)")
    print(f"  temp dir: {root} on {fstype} ({dev} mounted at {mnt})")
    print(f"  software: {binary} ({info['litestream']}); {info['radosgw']}; SQLite {info['sqlite']}")
    print(f"  S3      : RADOS Gateway (beast) over one OSD with objects in memory (memstore), "
          f"all on 127.0.0.1; a real S3 adds network latency and bandwidth limits")
    print(f"  workload: 1) one {params['row_bytes']}-byte row every {params['write_every_ms']} ms for "
          f"{params['steady_s']:.0f} s, then {params['idle_s']:.0f} s idle; 2) lag: "
          f"{params['lag_samples_1s']} commits with sync-interval 1s, {params['lag_samples_0']} with 0;"
          f" 3)+4) a {size_mb} MiB database (2000-byte rows, half random, half zeros)")
    sys.stdout.flush()
    return info


def fmt(v, spec=".1f", unit=""):
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_writer":
        return writer_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description="litestream S3 benchmark (prints figures)")
    ap.add_argument("--bin", required=True, help="path to the litestream binary")
    ap.add_argument("--quick", action="store_true",
                    help="shorter phases and a 100 MiB database (about a minute)")
    ap.add_argument("--size-mb", type=int, default=None,
                    help="database size for the snapshot and restore phases (default 1024; 100 with --quick)")
    ap.add_argument("--tmpdir", default=None, help="where to make temp dirs (default: $TMPDIR or /tmp)")
    ap.add_argument("--s3-latency-ms", type=float, default=0.0,
                    help="phase 1 only: the proxy holds each request this long (default 0), "
                         "to see the request rate against a distant S3")
    ap.add_argument("--outage-minutes", type=float, default=None,
                    help="run only the outage phase: steady writes with every S3 request answered "
                         "503 for this many minutes (10 for the figures in bench/README.md)")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        print(f"error: {binary} is not an executable", file=sys.stderr)
        return 2
    for tool in (AWS, shutil.which("radosgw")):
        if tool is None or not os.access(tool, os.X_OK):
            print(f"error: {tool or 'radosgw'} not found (deps/install --test)", file=sys.stderr)
            return 2
    params = dict(QUICK if args.quick else FULL)
    size_mb = args.size_mb if args.size_mb is not None else params["size_mb"]
    if size_mb < 1:
        print("error: --size-mb must be at least 1", file=sys.stderr)
        return 2

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)

    root = tempfile.mkdtemp(prefix="litestream-bench-s3-", dir=args.tmpdir)
    # Short: the daemons' admin sockets and ours live under it (108-byte limit).
    short = tempfile.mkdtemp(prefix="ls-s3b-", dir="/tmp")
    rgw = Rgw(os.path.join(short, "rgw"))
    sockdir = os.path.join(short, "sock")
    os.mkdir(sockdir)
    s3 = None
    t_start = now()
    try:
        info = machine_header(binary, root, params, size_mb, args.quick)
        if size_mb > 3000:
            print(f"  WARNING: rgw keeps its objects in 2 GiB of memory; a {size_mb} MiB "
                  f"database's snapshot may not fit")
        print("\n[0/4] starting rgw (test/rgw/rgw-up.sh) and creating the bucket ...", flush=True)
        t0 = now()
        rgw.start()
        rgw.create_bucket(BUCKET)
        s3 = S3(rgw.port, BUCKET)
        print(f"  rgw on 127.0.0.1:{rgw.port}, bucket {BUCKET}, in {now() - t0:.1f} s", flush=True)
        ctx = Ctx(binary, root, sockdir, rgw, s3, params, args.s3_latency_ms)
        if args.outage_minutes is not None:
            print(f"\n[outage] steady writes, the endpoint answering 503 for "
                  f"{args.outage_minutes:g} min ...", flush=True)
            print_outage(phase_outage(ctx, args.outage_minutes))
            return 0

        print(f"\n[1/4] requests: steady writes {params['steady_s']:.0f} s, then idle "
              f"{params['idle_s']:.0f} s (sync-interval 1s, sidecar behind a counting proxy"
              f"{f' adding {args.s3_latency_ms:g} ms per request' if args.s3_latency_ms else ''}) ...",
              flush=True)
        req = phase_requests(ctx)
        print(f"  steady: {req['commits']} commits in {req['steady_s']:.1f} s ({req['late']} late); "
              f"requests: {fmt_kinds(req['steady']['proxy'])}", flush=True)
        print(f"  idle  : {req['idle_s']:.1f} s from the moment the bucket had every commit "
              f"({req['drain_s']:.2f} s after the last one); requests: "
              f"{fmt_kinds(req['idle']['proxy'])}", flush=True)

        lag = {}
        for label, si, n in (("1s", None, params["lag_samples_1s"]), ("0", "0", params["lag_samples_0"])):
            print(f"\n[2/4] commit-to-replica lag, sync-interval {label}"
                  f"{' (the S3 default)' if si is None else ''}: {n} commits ...", flush=True)
            lag[label] = l = phase_lag(ctx, label, si, n)
            print(f"  p50 {fmt(l['p50_ms'])} ms, p99 {fmt(l['p99_ms'])} ms; {l['samples']} samples, "
                  f"{l['skipped']} skipped, {l['timeouts']} timeouts", flush=True)

        print(f"\n[3/4] snapshot upload: building a {size_mb} MiB database ...", flush=True)
        snap = phase_snapshot_restore(ctx, size_mb)
        print(f"  built {snap['db_bytes'] / MB:.0f} MB in {snap['build_s']:.1f} s; snapshot in the "
              f"bucket {snap['visible_s']:.2f} s after the sidecar started", flush=True)
        print("\n[4/4] restore from S3 (ran after [3/4], same database)", flush=True)
        print(f"  restore {snap['restore_s']:.2f} s, cp {snap['cp_s']:.2f} s", flush=True)
    except BenchError as e:
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}); cleaning up", file=sys.stderr)
        return 130
    finally:
        # Ignore further SIGINT/SIGTERM while stopping everything.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for w in WRITERS:
            w.kill()
        for side in SIDECARS:
            side.kill()
        if s3 is not None:
            s3.close()
        try:
            rgw.stop()
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"warning: rgw-down.sh: {e}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(short, ignore_errors=True)

    mark = lambda c: "ok" if c else "MISSED"
    print("\nResults (MB = 10^6 bytes, MiB = 2^20 bytes)")
    st, idle = req["steady"], req["idle"]
    agree = st["proxy"] == st["log"] and idle["proxy"] == idle["log"]
    print(f"  PUTs per minute, steady   : {req['steady_puts_per_min']:.1f} "
          f"({req['steady_puts']} PUTs in {req['steady_s']:.1f} s of writes, {req['commits']} commits; "
          f"all requests {req['steady_reqs_per_min']:.1f}/min)"
          f"{f'; proxy adds {ctx.latency_ms:g} ms per request' if ctx.latency_ms else ''}")
    print(f"  PUTs off the 1 s tick     : {req['steady_puts_close']} of {req['steady_puts']} came "
          f"< 250 ms after the previous PUT (a segment shipped as soon as the previous upload "
          f"ended, not at a sync tick)")
    print(f"  PUTs per minute, idle     : {req['idle_puts_per_min']:.1f} "
          f"({req['idle_puts']} PUTs in {req['idle_s']:.0f} s idle) [{mark(req['idle_puts'] == 0)}: 0]; "
          f"all requests {req['idle_reqs_per_min']:.1f}/min ({fmt_kinds(idle['proxy'])})")
    print(f"  requests by kind (proxy)  : start-up {fmt_kinds(req['startup']['proxy'])}; steady "
          f"{fmt_kinds(st['proxy'])}; drain ({req['drain_s']:.2f} s) {fmt_kinds(req['drain']['proxy'])};"
          f" idle {fmt_kinds(idle['proxy'])}; on SIGTERM {fmt_kinds(req['after']['proxy'])}")
    print(f"  cross-check (debug log)   : steady {fmt_kinds(st['log'])}; idle {fmt_kinds(idle['log'])}; "
          f"{'same as the proxy' if agree else 'DIFFERS from the proxy'}; retries "
          f"{st['log_retries'] + idle['log_retries']}, non-2xx {st['log_errors'] + idle['log_errors']}; "
          f"{req['connections']} TCP connections, {req['parse_failures']} unparsed streams")
    o = req["objects"]
    print(f"  objects in the replica    : {o[0][0]} at start, +{o[1][0] - o[0][0]} over the writes "
          f"({(o[1][1] - o[0][1]) / 1024:.0f} KiB), +{o[2][0] - o[1][0]} while idle")
    print(f"  sidecar (steady + idle)   : CPU {req['cpu_s']:.2f} s, peak RSS (VmHWM) "
          f"{req['hwm_kib'] / 1024:.1f} MiB; ready (snapshot in the bucket) {req['ready_s']:.2f} s after start")
    for label in ("1s", "0"):
        l = lag[label]
        print(f"  lag, sync-interval {label:<3}   : p50 {fmt(l['p50_ms'])} ms, p99 {fmt(l['p99_ms'])} ms; "
              f"min {fmt(l['min_ms'])}, max {fmt(l['max_ms'])}, mean {fmt(l['mean_ms'])} ms; "
              f"{l['samples']} samples, {l['skipped']} skipped (WAL restart), {l['timeouts']} timeouts "
              f"(> {LAG_TIMEOUT_S:.0f} s)")
        print(f"    {'':<24}  bucket poll {fmt(l['poll_ms'], '.2f')} ms per S3 call ({l['polls']} calls); "
              f"sidecar requests {fmt_kinds(l['requests'])} in {l['seconds']:.1f} s (median PUT "
              f"{l['put_ms']:.0f} ms); CPU {l['cpu_s']:.2f} s, VmHWM {l['hwm_kib'] / 1024:.1f} MiB")
    print(f"  snapshot upload           : {snap['upload_mb_s']:.1f} MB/s = {snap['db_bytes'] / MB:.0f} MB "
          f"of database in {snap['visible_s']:.2f} s from start to listed; object "
          f"{snap['snapshot_bytes'] / MB:.0f} MB (LZ4), {snap['parts']} parts of 8 MiB, "
          f"{snap['part_retries']} part retries, median part PUT {fmt(snap['part_ms_median'], '.0f')} ms")
    print(f"    {'':<24}  timeline: upload started at {fmt(snap['t_upload_start_s'], '.2f')} s (start-up "
          f"and LZ4 compression to a staging file before it), stored at {fmt(snap['t_stored_s'], '.2f')} s "
          f"(multipart done, HEAD checked); requests {fmt_kinds(snap['snapshot_requests'])}")
    print(f"    {'':<24}  sidecar CPU {snap['cpu_s']:.2f} s, peak RSS (VmHWM) {snap['hwm_kib'] / 1024:.1f} MiB")
    print(f"  restore from S3           : {snap['restore_mb_s']:.1f} MB/s ({snap['restore_s']:.2f} s; CPU "
          f"{snap['restore_cpu_s']:.2f} s, max RSS {snap['restore_rss_kib'] / 1024:.1f} MiB); cp "
          f"{snap['cp_mb_s']:.1f} MB/s ({snap['cp_s']:.2f} s), cp + sync {snap['cp_sync_mb_s']:.1f} MB/s")
    print(f"    {'':<24}  the snapshot object as one GET on one connection: "
          f"{snap['one_get_mb_s']:.1f} MB/s ({snap['one_get_s']:.2f} s); restore (ranged GETs "
          f"decompressed as they arrive, then integrity check and fsync) takes "
          f"{1 / snap['restore_vs_one_get']:.2f} x that time")
    print(f"    {'':<24}  restore / cp = {snap['restore_vs_cp']:.3f}; restore / (cp + sync) = "
          f"{snap['restore_vs_cp_sync']:.3f}; restored {snap['rows']} rows, identical (sha256)")
    problems = req["problems"] + lag["1s"]["problems"] + lag["0"]["problems"] + snap["problems"]
    print(f"  sidecar WARN/ERROR lines  : {len(problems)}")
    for line in problems[:10]:
        print("    " + line)
    print(f"  total benchmark time      : {now() - t_start:.1f} s; load average at end {loadavg()}")
    few = [k for k in ("1s", "0") if lag[k]["samples"] < MIN_LAG_SAMPLES]
    if few:
        print(f"WARNING: fewer than {MIN_LAG_SAMPLES} lag samples with sync-interval {', '.join(few)}")
    r2 = lambda v: None if v is None else round(v, 2)
    out = {
        "bench": "s3", "quick": args.quick, "nproc": info["nproc"], "loadavg_start": info["loadavg"],
        "s3_latency_ms": args.s3_latency_ms,
        "litestream": info["litestream"], "radosgw": info["radosgw"],
        "steady_s": r2(req["steady_s"]), "steady_commits": req["commits"],
        "steady_puts": req["steady_puts"], "steady_puts_log": req["steady_puts_log"],
        "steady_puts_off_tick": req["steady_puts_close"],
        "steady_puts_per_min": r2(req["steady_puts_per_min"]),
        "steady_requests_per_min": r2(req["steady_reqs_per_min"]),
        "idle_s": r2(req["idle_s"]), "idle_puts": req["idle_puts"], "idle_puts_log": req["idle_puts_log"],
        "idle_puts_per_min": r2(req["idle_puts_per_min"]),
        "idle_requests_per_min": r2(req["idle_reqs_per_min"]),
        "requests_steady": st["proxy"], "requests_idle": idle["proxy"],
        "objects_gained_steady": o[1][0] - o[0][0], "objects_gained_idle": o[2][0] - o[1][0],
        "requests_sidecar_cpu_s": r2(req["cpu_s"]), "requests_sidecar_hwm_mib": r2(req["hwm_kib"] / 1024),
    }
    for label in ("1s", "0"):
        l, k = lag[label], "lag_" + ("1s" if label == "1s" else "0s")
        out.update({f"{k}_p50_ms": r2(l["p50_ms"]), f"{k}_p99_ms": r2(l["p99_ms"]),
                    f"{k}_max_ms": r2(l["max_ms"]), f"{k}_samples": l["samples"],
                    f"{k}_skipped": l["skipped"], f"{k}_timeouts": l["timeouts"],
                    f"{k}_sidecar_cpu_s": r2(l["cpu_s"]), f"{k}_sidecar_hwm_mib": r2(l["hwm_kib"] / 1024)})
    out.update({
        "db_bytes": snap["db_bytes"], "snapshot_bytes": snap["snapshot_bytes"], "parts": snap["parts"],
        "snapshot_s": r2(snap["visible_s"]), "snapshot_upload_mb_s": r2(snap["upload_mb_s"]),
        "snapshot_sidecar_cpu_s": r2(snap["cpu_s"]), "snapshot_sidecar_hwm_mib": r2(snap["hwm_kib"] / 1024),
        "restore_s": r2(snap["restore_s"]), "restore_mb_s": r2(snap["restore_mb_s"]),
        "cp_mb_s": r2(snap["cp_mb_s"]), "restore_vs_cp": round(snap["restore_vs_cp"], 3),
        "one_get_s": r2(snap["one_get_s"]), "restore_vs_one_get": round(snap["restore_vs_one_get"], 3),
        "restore_vs_cp_sync": round(snap["restore_vs_cp_sync"], 3),
        "restore_rss_mib": r2(snap["restore_rss_kib"] / 1024),
        "sidecar_problems": len(problems), "total_s": r2(now() - t_start),
    })
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
