"""The control socket, `litestream status` and the Prometheus endpoint,
through the real daemon: real Unix and TCP sockets, real clients (Python's
http.client over AF_UNIX, curl --unix-socket, raw bytes for what no client
would send), real databases and replicas, restores to prove durability."""
import http.client
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from ctlutil import (Daemon, UnixHTTPConnection, call, insert, last_value, make_db, post, raw,
                     read_response, status_of)
from ctlutil import sockdir  # noqa: F401 (a fixture)
from lsutil import Replicator, assert_same, restore, start_writers, wait_for, wait_writers

ALLOWED_LINT = {
    # Litestream 0.3's counter names, kept on purpose so dashboards keep working.
    "litestream_total_wal_bytes", "litestream_sync_count", "litestream_sync_error_count",
    "litestream_sync_seconds", "litestream_checkpoint_count", "litestream_checkpoint_error_count",
    "litestream_checkpoint_seconds", "litestream_replica_wal_bytes",
    "litestream_replica_operation_bytes",
}
ALLOWED_LINT_MESSAGES = {
    'counter metrics should have "_total" suffix',
    'non-histogram and non-summary metrics should not have "_count" suffix',
}


# ---- endpoints ---------------------------------------------------------------------------


def test_status_and_db(litestream_bin, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir)
    insert(d.db["app"], "x")
    wait_for(lambda: d.status()["dbs"][0]["replicas"][0]["position"] is not None, what="replica position")
    s = d.status()
    assert s["pid"] == d.rep.proc.pid
    assert s["version"] and s["uptime_seconds"] >= 0
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", s["started_at"])
    (db,) = s["dbs"]
    assert db["name"] == "app" and db["path"] == d.db["app"]
    assert db["page_size"] == 4096 and db["state"] == "open"
    assert re.fullmatch(r"[0-9a-f]{16}", db["position"]["generation"])
    for k in ("db_size", "wal_size", "sync_count", "sync_error_count", "total_wal_bytes"):
        assert isinstance(db[k], (int, float)), k
    assert db["last_error"] is None and db["last_sync"]
    assert set(db["checkpoints"]) == {"PASSIVE", "FULL", "RESTART", "TRUNCATE"}
    (r,) = db["replicas"]
    assert r["name"] == "r1" and r["type"] == "file"
    for k in ("lag_seconds", "lag_bytes", "pending_bytes", "last_sync", "last_error", "position"):
        assert k in r, k
    wait_for(lambda: d.status()["dbs"][0]["replicas"][0]["pending_bytes"] == 0, what="caught up")

    # One database, by name and by its path (percent-encoded).
    st, one, _ = d.call("GET", "/v1/dbs/app")
    assert st == 200 and one["name"] == "app" and one["replicas"][0]["name"] == "r1"
    st, one, _ = d.call("GET", "/v1/dbs/" + d.db["app"].replace("/", "%2F"))
    assert st == 200 and one["name"] == "app"

    # Errors: JSON with the right status.
    st, body, _ = d.call("GET", "/v1/dbs/nope")
    assert st == 404 and "nope" in body["error"]
    st, body, _ = d.call("GET", "/v1/nothing")
    assert st == 404 and "error" in body
    st, body, _ = d.call("GET", "/")
    assert st == 404
    st, body, hdrs = d.call("POST", "/v1/status")
    assert st == 405 and hdrs.get("Allow") == "GET, HEAD"
    st, body, hdrs = d.call("GET", "/v1/dbs/app/sync")
    assert st == 405 and hdrs.get("Allow") == "POST"
    st, body, _ = d.call("DELETE", "/v1/status")  # DELETE /v1/dbs/NAME stops one (test_control_dbs)
    assert st == 405
    st, body, hdrs = d.call("HEAD", "/v1/status")
    assert st == 200 and int(hdrs["Content-Length"]) > 0
    assert d.stop() == 0


def test_keep_alive_and_pipelining(litestream_bin, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir)
    insert(d.db["app"], "a")
    # Keep-alive: several requests, one connection.
    c = UnixHTTPConnection(d.sock)
    c.connect()
    first = c.sock
    for target in ("/v1/status", "/v1/dbs/app", "/metrics", "/v1/status"):
        c.request("GET", target)
        r = c.getresponse()
        r.read()
        assert r.status == 200 and r.getheader("Connection") == "keep-alive"
    c.request("POST", "/v1/dbs/app/sync?wait=1", body=b"")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["replicated"] is True
    assert c.sock is first, "the connection was not kept"
    c.close()

    # Pipelining: five requests in one write, five answers in order, then close.
    reqs = (b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /v1/dbs/nope HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /v1/dbs/app/sync?wait=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            b"POST /v1/dbs/app/checkpoint HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 17\r\n\r\n{\"mode\": \"FULL\"}\n"
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(d.sock)
    s.sendall(reqs)
    f = s.makefile("rb")
    statuses = []
    for _ in range(5):
        status, _, body = read_response(f)
        statuses.append(status)
    assert statuses == [200, 404, 200, 200, 200]
    assert b"litestream_db_size" in body
    assert f.read() == b""  # closed after the last, as asked
    s.close()
    assert d.stop() == 0


def test_sync_wait_then_restore(litestream_bin, run, tmp_path, sockdir):
    """sync?wait=1 returns only when the replica holds the last committed row:
    a restore right after it returns has that row. The replica ships at most
    every 800ms, so without the wait it would usually not."""
    d = Daemon(litestream_bin, tmp_path, sockdir,
               replicas={"slow": ("app", str(tmp_path / "replica"), "sync-interval = 800ms")})
    for i in range(4):
        value = f"row-{i}-{time.time()}"
        insert(d.db["app"], value)
        t0 = time.monotonic()
        st, body, _ = d.call("POST", "/v1/dbs/app/sync?wait=1&timeout=10s")
        waited = time.monotonic() - t0
        assert st == 200, body
        assert body["replicated"] is True
        (rp,) = body["replicas"]
        assert rp["position"]["generation"] == body["position"]["generation"]
        assert (rp["position"]["index"], rp["position"]["offset"]) >= \
            (body["position"]["index"], body["position"]["offset"])
        out = tmp_path / f"restored-{i}.db"
        restore(run, f"file://{d.replica['slow']}", out)
        assert last_value(out) == value, f"iteration {i}: restored db lacks the row (waited {waited:.2f}s)"

    # Without wait: answers once the local sync has the commit, with its position.
    insert(d.db["app"], "nowait")
    st, body, _ = d.call("POST", "/v1/dbs/app/sync")
    assert st == 200 and body["replicated"] is False and body["position"]["offset"] > 0
    # Parameters in a JSON body work the same; bad ones are refused.
    st, body, _ = d.call("POST", "/v1/dbs/app/sync", body=b'{"wait": true, "timeout": "5s"}')
    assert st == 200 and body["replicated"] is True
    st, body, _ = d.call("POST", "/v1/dbs/app/sync?timeout=forever")
    assert st == 400 and "timeout" in body["error"]
    st, body, _ = d.call("POST", "/v1/dbs/app/sync?wait=maybe")
    assert st == 400
    st, body, _ = d.call("POST", "/v1/dbs/app/sync?bogus=1")
    assert st == 400 and "bogus" in body["error"]
    assert d.stop() == 0


def test_sync_wait_times_out_on_a_broken_replica(litestream_bin, run, tmp_path, sockdir):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    d = Daemon(litestream_bin, tmp_path, sockdir, replicas={
        "good": ("app", str(tmp_path / "good"), ""),
        "broken": ("app", str(blocker / "replica"), ""),
    })
    insert(d.db["app"], "v")
    t0 = time.monotonic()
    st, body, _ = d.call("POST", "/v1/dbs/app/sync?wait=1&timeout=1500ms")
    elapsed = time.monotonic() - t0
    assert st == 504, body
    assert 1.4 <= elapsed < 5, elapsed
    assert "timed out" in body["error"]
    errs = {r["name"]: r["last_error"] for r in body["replicas"]}
    assert errs["good"] is None and errs["broken"]
    # Clients that give up waiting free their slots at once.
    waiting = []
    for _ in range(10):
        w = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        w.connect(d.sock)
        w.sendall(b"POST /v1/dbs/app/sync?wait=1&timeout=5m HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        waiting.append(w)
    wait_for(lambda: d.status()["waiting_requests"] == 10, timeout=5, what="10 waiting requests")
    for w in waiting:
        w.close()
    wait_for(lambda: d.status()["waiting_requests"] == 0, timeout=2, what="abandoned waits dropped")
    # At most half the connections (64 of 128) may wait; then 503, and status still answers.
    waiting = []
    for _ in range(64):
        w = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        w.connect(d.sock)
        w.sendall(b"POST /v1/dbs/app/sync?wait=1&timeout=5m HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        waiting.append(w)
    wait_for(lambda: d.status()["waiting_requests"] == 64, timeout=5, what="64 waiting requests")
    st, body, _ = d.call("POST", "/v1/dbs/app/sync?wait=1")
    assert st == 503 and "too many" in body["error"]
    for w in waiting:
        w.close()
    wait_for(lambda: d.status()["waiting_requests"] == 0, timeout=2, what="abandoned waits dropped")
    # The status command reports the error and fails, for health checks.
    r = run("status", "-socket", d.sock)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "broken" in r.stderr and "error" in r.stderr
    # A request still waiting when the daemon stops: the daemon exits cleanly.
    holder = {}

    def waiter():
        try:
            holder["r"] = d.call("POST", "/v1/dbs/app/sync?wait=1&timeout=60s", timeout=30)
        except Exception as e:  # the connection is closed under it
            holder["e"] = e
    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    # 1: the broken replica could not ship its last bytes (named in the log).
    assert d.stop() == 1
    th.join(30)
    assert time.monotonic() - t0 < 20
    assert "e" in holder or holder["r"][0] in (503, 504)


def test_checkpoint_and_snapshot(litestream_bin, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir)
    for i in range(20):
        insert(d.db["app"], f"v{i}")
    before = d.status()["dbs"][0]["checkpoints"]
    st, body, _ = d.call("POST", "/v1/dbs/app/checkpoint?mode=truncate&timeout=10s")
    assert st == 200, body
    assert body["mode"] == "TRUNCATE"
    after = d.status()["dbs"][0]["checkpoints"]
    assert after["TRUNCATE"]["count"] == before["TRUNCATE"]["count"] + 1
    st, body, _ = d.call("POST", "/v1/dbs/app/checkpoint", body=b'{"mode": "FULL"}')
    assert st == 200 and body["mode"] == "FULL"
    st, body, _ = d.call("POST", "/v1/dbs/app/checkpoint?mode=SOMETIMES")
    assert st == 400 and "mode" in body["error"]

    snaps = lambda: sorted(p for p in os.popen(f"find {d.replica['r1']} -name '*.snapshot.lz4'").read().split())
    n0 = len(snaps())
    st, body, _ = d.call("POST", "/v1/dbs/app/snapshot?wait=1&timeout=10s")
    assert st == 200, body
    assert len(snaps()) == n0 + 1 or d.status()["dbs"][0]["replicas"][0]["snapshots"] >= 2
    st, body, _ = d.call("POST", "/v1/dbs/app/snapshot")
    assert st == 202
    st, body, _ = d.call("POST", "/v1/dbs/nope/snapshot")
    assert st == 404
    assert d.stop() == 0


# ---- bad input --------------------------------------------------------------------------


def test_bad_input(litestream_bin, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir)
    cases = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 505),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET /v1/status FTP/1.0\r\n\r\n", 400),
        (b"\x00\x01\x02\x03\r\n\r\n", 400),
        (b"GET /v1/status HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"POST /v1/dbs/app/sync HTTP/1.1\r\nContent-Length: -4\r\n\r\n", 400),
        (b"GET /v1/status HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 413),
        (b"GET /v1/status HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n", 413),
        (b"GET /" + b"a" * 4000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST /v1/dbs/app/sync HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n", 413),
        (b"POST /v1/dbs/app/sync HTTP/1.1\r\nContent-Length: 40000\r\n\r\n" + b"{" * 40000, 413),
        (b"POST /v1/dbs/app/sync HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         + b"4000\r\n" + b"x" * 0x4000 + b"\r\n" + b"4000\r\n" + b"x" * 0x4000 + b"\r\n0\r\n\r\n", 413),
        (post("/v1/dbs/app/sync", b"{not json"), 400),
        (post("/v1/dbs/app/sync", b"[]"), 400),
        (post("/v1/dbs/app/sync", b'{"wait": "sure"}'), 400),
        (post("/v1/dbs/app/checkpoint", b'{"mode": 42}'), 400),
        (post("/v1/dbs/app/sync", b'{"what": 1}'), 400),
        (post("/v1/dbs/app/sync", b'{"wait": true, "timeout": "1x"}'), 400),
        (post("/v1/dbs/app/sync", b"\xff\xfe garbage"), 400),
        (b"POST /v1/dbs/nope/sync HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 404),
        (b"GET /v1/dbs/%zz HTTP/1.1\r\n\r\n", 404),
        (b"GET /v1/dbs/a%00b HTTP/1.1\r\n\r\n", 404),
        (b"PUT /v1/status HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /v1/status?x=%zz HTTP/1.1\r\nConnection: close\r\n\r\n", 200),  # GETs ignore parameters
    ]
    for data, want in cases:
        resp = raw(d.sock, data)
        got = status_of(resp)
        assert got == want, f"{data[:60]!r}: got {resp[:200]!r}"
        if want >= 400:
            body = resp.split(b"\r\n\r\n", 1)[1]
            assert "error" in json.loads(body), resp[:300]
        # The server stays up and answers.
        assert d.call("GET", "/v1/status")[0] == 200
    # A request cut off mid-way by the client does no harm either.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.sock)
    s.sendall(b"POST /v1/dbs/app/sync HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"wa")
    s.close()
    assert d.call("GET", "/v1/status")[0] == 200
    assert d.rep.proc.poll() is None
    assert d.stop() == 0


def test_abuse_does_not_stall_replication(litestream_bin, run, tmp_path, sockdir):
    """Slowloris, 1,000 connections at once and garbage, while an application
    writes: the server answers, cuts the slow clients, and the replica's lag
    stays where it was before the abuse."""
    d = Daemon(litestream_bin, tmp_path, sockdir)
    writer = start_writers(d.db["app"], [["--seed", 1, "--seconds", 9, "--sleep", 0.005]])
    samples = []  # (time, lag_seconds, pending_bytes, replica offset)
    stop = threading.Event()

    retries = []

    def poll():
        while not stop.is_set():
            for attempt in range(5):
                # A client connecting amid the flood may be dropped as idle
                # before its request is read: it retries, as clients do.
                try:
                    r = d.status()["dbs"][0]["replicas"][0]
                    pos = r["position"] or {}
                    samples.append((time.monotonic(), r["lag_seconds"], r["pending_bytes"],
                                    (pos.get("index"), pos.get("offset"))))
                    break
                except (OSError, http.client.HTTPException) as e:
                    # A full accept backlog (EAGAIN) is the kernel's answer
                    # during the flood; a client waits a moment and retries.
                    if attempt == 4:
                        samples.append((time.monotonic(), None, None, repr(e)))
                    else:
                        retries.append(repr(e))
                        time.sleep(0.02)
            time.sleep(0.1)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(1.5)
    t_abuse = time.monotonic()

    # Slowloris: 20 clients sending headers a byte a second.
    slow_results = []

    def slowloris():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        s.connect(d.sock)
        t0 = time.monotonic()
        msg = b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        got = b""
        try:
            for byte in msg:
                s.sendall(bytes([byte]))
                s.settimeout(1.0)
                try:
                    chunk = s.recv(4096)
                    if chunk:
                        got += chunk
                    else:
                        break
                except socket.timeout:
                    continue
                if got:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(5)
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except (OSError, socket.timeout):
            pass
        slow_results.append((time.monotonic() - t0, got))
        s.close()

    slow = [threading.Thread(target=slowloris) for _ in range(20)]
    for t in slow:
        t.start()
    time.sleep(1.5)  # their requests are under way (an idle connection may be evicted instead)

    # 1,000 connections opened at once, kept open.
    conns = []
    deadline = time.monotonic() + 20
    t_flood = time.monotonic()
    for _ in range(1000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        while True:  # a full backlog answers EAGAIN: retry, as clients do
            try:
                s.connect(d.sock)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the server stopped accepting"
                time.sleep(0.001)
        conns.append(s)
    t_flood = time.monotonic() - t_flood
    # Meanwhile a well-behaved client is served: idle connections make room.
    t0 = time.monotonic()
    st, body, _ = d.call("GET", "/v1/dbs/app")
    flood_answer = time.monotonic() - t0
    assert st == 200
    time.sleep(0.5)
    closed = 0
    for s in conns:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    # Garbage, repeatedly, while all that goes on.
    for _ in range(50):
        assert status_of(raw(d.sock, b"\x16\x03\x01garbage\r\n\r\n")) == 400
    for s in conns:
        s.close()
    for t in slow:
        t.join(30)
    t_end = time.monotonic()
    time.sleep(1.0)
    stop.set()
    poller.join()
    wait_writers(writer)

    # The slow clients were cut with 408 after about 5 s, long before they finished.
    assert len(slow_results) == 20
    for took, got in slow_results:
        assert status_of(got) == 408, got[:200]
        assert 4 <= took < 9, took
    # At most max-conns (128) of the 1,000 stayed open: the rest were closed.
    assert closed >= 1000 - 128, closed
    # Replication kept its lag: sampled before and during the abuse.
    before = [s for s in samples if s[0] < t_abuse and s[1] is not None]
    during = [s for s in samples if t_abuse <= s[0] <= t_end and s[1] is not None]
    failed = [s for s in samples if s[1] is None]
    assert len(before) >= 5 and len(during) >= 10, (len(before), len(during), failed[:3])
    max_before = max(s[1] for s in before)
    max_during = max(s[1] for s in during)
    offsets = [s[3] for s in during]
    print(f"\nabuse: lag before max {max_before:.3f}s, during max {max_during:.3f}s over {len(during)} "
          f"samples; 1000 connections opened in {t_flood:.2f}s; "
          f"status answered in {flood_answer * 1000:.0f} ms during the flood; "
          f"{closed}/1000 flood connections closed by the server; slowloris cut after "
          f"{min(s[0] for s in slow_results):.1f}-{max(s[0] for s in slow_results):.1f}s; "
          f"{len(retries)} status polls retried, {len(failed)} failed")
    assert max_during < 1.0, (max_before, max_during)
    assert len(set(offsets)) > 3, "the replica did not move during the abuse"
    assert not failed, failed[:3]
    assert d.stop() == 0
    restore(run, f"file://{d.replica['r1']}", tmp_path / "restored.db")
    assert_same(d.db["app"], tmp_path / "restored.db")


# ---- metrics -----------------------------------------------------------------------------


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    complaints = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
    return p.returncode, complaints


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_metrics_promtool(litestream_bin, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir, dbs=("app", "other"), replicas={
        "r1": ("app", str(tmp_path / "r1"), ""),
        "r2": ("app", str(tmp_path / "r2"), "sync-interval = 300ms"),
        "o1": ("other", str(tmp_path / "o1"), ""),
    })
    for i in range(30):
        insert(d.db["app"], f"v{i}")
        insert(d.db["other"], f"w{i}")
    d.call("POST", "/v1/dbs/app/sync?wait=1")
    d.call("POST", "/v1/dbs/other/checkpoint?mode=RESTART")
    # On the TCP listener, only /metrics.
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    c.request("GET", "/metrics")
    r = c.getresponse()
    text = r.read().decode()
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    c.request("GET", "/v1/status")
    r = c.getresponse()
    assert r.status == 404 and "error" in json.loads(r.read())
    c.request("POST", "/metrics", body=b"")
    r = c.getresponse()
    r.read()
    assert r.status == 405
    c.close()
    st, via_socket, _ = d.call("GET", "/metrics")
    assert st == 200

    for body in (text, via_socket):
        rc, complaints = promtool_check(body)
        print(f"\npromtool check metrics: exit {rc}, {len(complaints)} lint lines")
        for line in complaints:
            print("  " + line)
        assert rc in (0, 3), complaints  # 3: lint problems only, the parse succeeded
        for line in complaints:
            name, _, msg = line.partition(" ")
            assert name in ALLOWED_LINT and msg in ALLOWED_LINT_MESSAGES, line

    def value(metric, **labels):
        sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pat = re.escape(metric) + (r"\{" + re.escape(sel) + r"\}" if sel else "")
        m = re.search(rf"^{pat} (\S+)$", text, re.M)
        assert m, f"{metric}{{{sel}}} missing"
        return float(m.group(1))

    app, other = d.db["app"], d.db["other"]
    assert value("litestream_db_size", db=app) > 0
    assert value("litestream_sync_count", db=app) > 0
    assert value("litestream_total_wal_bytes", db=app) > 0
    assert value("litestream_checkpoint_count", db=other, mode="RESTART") >= 1
    assert value("litestream_replica_wal_index", db=app, name="r1") >= 0
    assert value("litestream_replica_wal_offset", db=app, name="r1") > 0
    assert value("litestream_replica_wal_bytes", db=app, name="r1") > 0
    assert value("litestream_replica_operation_total", replica_type="file", operation="PUT") >= 3
    assert value("litestream_replica_operation_bytes", replica_type="file", operation="PUT") > 0
    assert value("litestream_replica_validation_total", db=app, name="r2", status="ok") == 0
    assert value("litestream_replica_lag_seconds", db=app, name="r1") >= 0
    assert value("litestream_replica_pending_bytes", db=app, name="r1") >= 0
    assert value("process_resident_memory_bytes") > 0
    assert value("process_open_fds") > 0
    assert abs(value("process_start_time_seconds") - time.time()) < 120
    assert value("process_cpu_seconds_total") >= 0
    for fam in re.findall(r"^# TYPE (\S+)", text, re.M):
        assert text.count(f"# HELP {fam} ") == 1, fam
    assert d.stop() == 0


def test_metrics_label_escaping(litestream_bin, tmp_path, sockdir):
    """A database path with a quote and a backslash: labels stay parseable."""
    odd = tmp_path / 'we"ird\\dir'
    odd.mkdir()
    db = odd / "app.db"
    make_db(str(db))
    sock = os.path.join(sockdir, "s")
    rep = Replicator(litestream_bin, ["-socket", sock, db, f"file://{tmp_path / 'rep'}"], tmp_path / "log")
    wait_for(lambda: os.path.exists(sock), what="socket")
    insert(str(db), "x")
    wait_for(lambda: "litestream_replica_wal_offset{" in call(sock, "GET", "/metrics")[1], what="metrics")
    text = call(sock, "GET", "/metrics")[1]
    escaped = str(db).replace("\\", "\\\\").replace('"', '\\"')
    assert f'litestream_db_size{{db="{escaped}"}}' in text
    if shutil.which("promtool"):
        rc, complaints = promtool_check(text)
        assert rc in (0, 3), complaints
        assert all(l.partition(" ")[0] in ALLOWED_LINT for l in complaints), complaints
    assert rep.stop() == 0


# ---- the socket file --------------------------------------------------------------------


def test_socket_mode_and_owner(litestream_bin, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir, mode="0640", metrics=False)
    st = os.stat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_uid == os.getuid()
    assert d.stop() == 0
    assert not os.path.exists(d.sock), "socket file left behind"


NOBODY_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("denied"); sys.exit(0)
s.sendall(b"GET /v1/status HTTP/1.1\r\nConnection: close\r\n\r\n")
data = b""
while True:
    c = s.recv(65536)
    if not c: break
    data += c
print(data.split(b"\r\n")[0].decode())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as nobody")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
@pytest.mark.parametrize("mode,expect", [("0600", "denied"), ("0666", "HTTP/1.1 200 OK")])
def test_other_user(litestream_bin, tmp_path, sockdir, mode, expect):
    os.chmod(sockdir, 0o755)  # only the socket's own mode may keep nobody out
    d = Daemon(litestream_bin, tmp_path, sockdir, mode=mode, metrics=False)
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        sys.executable, "-c", NOBODY_CLIENT, d.sock],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == expect
    assert d.stop() == 0


def test_stale_socket_replaced_live_one_refused(litestream_bin, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir, metrics=False)
    # A second daemon on the same socket: refused, and the first is untouched.
    (tmp_path / "b").mkdir()
    make_db(str(tmp_path / "b" / "b.db"))
    p = subprocess.run([litestream_bin, "replicate", "-socket", d.sock, tmp_path / "b" / "b.db",
                        f"file://{tmp_path / 'b' / 'rep'}"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "another process is listening" in p.stderr
    assert d.status()["pid"] == d.rep.proc.pid
    # kill -9 leaves the socket file behind; the next start replaces it.
    d.rep.kill()
    assert os.path.exists(d.sock)
    rep = Replicator(litestream_bin, ["-config", d.conf], tmp_path / "log2")
    wait_for(lambda: rep.proc.poll() is not None or _answers(d.sock), what="restarted daemon")
    assert status_via(d.sock)["pid"] == rep.proc.pid
    assert rep.stop() == 0
    # A regular file where the socket should be is never removed.
    with open(d.sock, "w") as f:
        f.write("precious")
    p = subprocess.run([litestream_bin, "replicate", "-config", d.conf], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "not a socket" in p.stderr
    assert open(d.sock).read() == "precious"


def _answers(sock):
    try:
        return call(sock, "GET", "/v1/status", timeout=2)[0] == 200
    except OSError:
        return False


def status_via(sock):
    return call(sock, "GET", "/v1/status")[1]


# ---- litestream status --------------------------------------------------------------------


def test_status_command(litestream_bin, run, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir, replicas={
        "fast": ("app", str(tmp_path / "fast"), ""),
        "slow": ("app", str(tmp_path / "slow"), "sync-interval = 5s"),
    })
    insert(d.db["app"], "a")
    d.call("POST", "/v1/dbs/app/sync?wait=1")
    r = run("status", "-socket", d.sock)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["database", "path", "state"]
    assert any(l.startswith("app ") and d.db["app"] in l for l in lines)
    assert any(l.startswith("fast ") for l in lines) and any(l.startswith("slow ") for l in lines)
    # The socket from the configuration file.
    r = run("status", "-config", d.conf, "-json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["dbs"][0]["name"] == "app"
    # A write the slow replica holds back for up to 5 s: it lags.
    insert(d.db["app"], "b")
    wait_for(lambda: d.status()["dbs"][0]["replicas"][1]["lag_seconds"] > 0.3, what="lag")
    r = run("status", "-socket", d.sock, "-max-lag", "200ms")
    assert r.returncode == 1 and "slow" in r.stderr and "lags by" in r.stderr
    r = run("status", "-socket", d.sock, "-max-lag", "1h")
    assert r.returncode == 0, r.stderr
    # Curl, the other real client.
    if shutil.which("curl"):
        p = subprocess.run(["curl", "-sS", "--unix-socket", d.sock, "-X", "POST",
                            "http://localhost/v1/dbs/app/sync?wait=1&timeout=10s"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and json.loads(p.stdout)["replicated"] is True
    assert d.stop() == 0
    r = run("status", "-socket", d.sock)
    assert r.returncode == 1 and "cannot connect" in r.stderr
    r = run("status", "-socket", d.sock, "extra")
    assert r.returncode == 2
