"""What the tests of the control socket share: HTTP over a real Unix
socket (http.client, and raw bytes for what no client would send), a
`litestream replicate -config` daemon with a control socket and metrics on
TCP, and small database helpers."""
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import tempfile

import pytest

from lsutil import Replicator, wait_for


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=15):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def call(sock, method, target, body=None, headers=None, timeout=15):
    """One request on a new connection: (status, parsed JSON or text, headers)."""
    c = UnixHTTPConnection(sock, timeout=timeout)
    try:
        c.request(method, target, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        hdrs = dict(r.getheaders())
    finally:
        c.close()
    ctype = hdrs.get("Content-Type", "")
    if ctype.startswith("application/json") and data:
        return r.status, json.loads(data), hdrs
    return r.status, data.decode(), hdrs


def raw(sock, data, timeout=10):
    """Sends bytes, returns the first response (headers and body) as bytes,
    or whatever came before the server closed."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    try:
        while True:
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"\r\nContent-Length: (\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    break
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        pass
    s.close()
    return out


def read_response(f):
    """One response from a buffered reader: (status, headers, body)."""
    status = int(f.readline().split()[1])
    headers = {}
    while True:
        line = f.readline().decode().rstrip("\r\n")
        if not line:
            break
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, f.read(int(headers["content-length"]))


def post(target, body):
    return (f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def status_of(resp):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    return int(m.group(1)) if m else None


def make_db(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (id INTEGER PRIMARY KEY, v TEXT)")
    conn.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def sockdir():
    """A short directory for sockets (sun_path holds 107 bytes), never /var/run."""
    d = tempfile.mkdtemp(prefix="lsctl-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Daemon:
    """`litestream replicate -config` with a control socket (and metrics on TCP)."""

    def __init__(self, binary, tmp_path, sockdir, dbs=("app",), replicas=None, mode="0600",
                 metrics=True, extra=""):
        self.tmp = tmp_path
        self.sock = os.path.join(sockdir, "ctl.sock")
        self.port = free_port() if metrics else None
        self.db = {}
        lines = ["[litestream]", f"socket = {self.sock}", f"socket-mode = {mode}", "log-level = debug"]
        if metrics:
            lines.append(f"metrics-addr = 127.0.0.1:{self.port}")
        lines.append(extra)
        for name in dbs:
            self.db[name] = str(tmp_path / f"{name}.db")
            make_db(self.db[name])
            lines += [f"[db {name}]", f"path = {self.db[name]}", "monitor-interval = 200ms"]
        self.replica = {}
        for rname, (dbname, rpath, opts) in (replicas or {
                "r1": ("app", str(tmp_path / "replica"), "")}).items():
            self.replica[rname] = rpath
            lines += [f"[replica {rname}]", f"db = {dbname}", "type = file", f"path = {rpath}", opts]
        self.conf = tmp_path / "litestream.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.rep = Replicator(binary, ["-config", self.conf], tmp_path / "log")
        wait_for(lambda: os.path.exists(self.sock) or self.rep.proc.poll() is not None,
                 what="control socket")
        assert self.rep.proc.poll() is None, self.rep.text()

    def call(self, *a, **kw):
        return call(self.sock, *a, **kw)

    def status(self):
        st, body, _ = self.call("GET", "/v1/status")
        assert st == 200, body
        return body

    def stop(self):
        rc = self.rep.stop()
        assert "handles still open" not in self.rep.text()
        return rc


def insert(db, value):
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    conn.execute("INSERT INTO kv (v) VALUES (?)", (value,))
    conn.close()


def last_value(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT v FROM kv ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    return row[0] if row else None
