"""GET /healthz on the control socket and on the metrics TCP listener, for
probes that have no shell: 200 while every replica is within the query's
limits, 503 naming the database, replica and reason once one cannot ship
(its directory replaced by a file; an S3 endpoint nobody listens on) or
lags past max-lag, 200 again once it recovers, 400 for a bad parameter.
`litestream status` judges by the same rule and gives the same reasons."""
import http.client
import json
import os

from ctlutil import Daemon, call, free_port, insert, make_db, sockdir  # noqa: F401 (sockdir: a fixture)
from lsutil import Replicator, wait_for


def tcp(port, target, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        c.request(method, target)
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    return r.status, json.loads(data) if data else None


def both(d, target):
    """The same request on the socket and on TCP: one answer, checked equal in kind."""
    st, body, hdrs = d.call("GET", target)
    assert hdrs["Content-Type"].startswith("application/json")
    st2, body2 = tcp(d.port, target)
    assert st2 == st and body2.get("status") == body.get("status"), (body, body2)
    return st, body


def test_healthy_broken_recovered(litestream_bin, run, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir)
    replica = d.replica["r1"]
    insert(d.db["app"], "a")
    st, body, _ = d.call("POST", "/v1/dbs/app/sync?wait=1&timeout=10s")
    assert st == 200, body
    for q in ("", "?max-lag=10s", "?max-lag=1m30s&db=app", f"?db={d.db['app']}", "?db=app&db=app"):
        st, body = both(d, "/healthz" + q)
        assert st == 200 and body == {"status": "ok", "replicas": 1}, (q, body)
    st, body, hdrs = d.call("HEAD", "/healthz")
    assert st == 200 and int(hdrs["Content-Length"]) > 0

    # The replica's directory becomes a file: nothing can ship.
    os.rename(replica, replica + ".aside")
    with open(replica, "w") as f:
        f.write("in the way\n")
    insert(d.db["app"], "b")
    d.call("POST", "/v1/dbs/app/sync")
    wait_for(lambda: d.call("GET", "/healthz")[0] == 503, timeout=20, what="healthz 503")
    st, body = both(d, "/healthz?max-lag=1h")
    assert st == 503 and body["status"] == "unhealthy" and body["replicas"] == 1, body
    (bad,) = body["unhealthy"]
    assert bad["db"] == "app" and bad["path"] == d.db["app"] and bad["replica"] == "r1", bad
    assert bad["reason"].startswith("error: ") and bad["last_error"] in bad["reason"], bad
    assert "Not a directory" in bad["last_error"] or "File exists" in bad["last_error"], bad
    assert body["error"] == f"app(r1): {bad['reason']}"
    # status says the same thing, by the same rule.
    r = run("status", "-socket", d.sock)
    assert r.returncode == 1 and f"{d.db['app']}(r1): error: " in r.stderr, r.stderr

    # Fixed: healthy again without a restart.
    os.remove(replica)
    os.rename(replica + ".aside", replica)
    insert(d.db["app"], "c")
    wait_for(lambda: d.call("GET", "/healthz")[0] == 200, timeout=30, what="healthz 200 again")
    assert both(d, "/healthz?max-lag=30s")[0] == 200
    assert d.stop() == 0


def test_lag_limits_and_bad_queries(litestream_bin, run, tmp_path, sockdir):
    d = Daemon(litestream_bin, tmp_path, sockdir, replicas={
        "fast": ("app", str(tmp_path / "fast"), ""),
        "slow": ("app", str(tmp_path / "slow"), "sync-interval = 5s"),
    })
    insert(d.db["app"], "a")
    d.call("POST", "/v1/dbs/app/sync?wait=1&timeout=10s")
    insert(d.db["app"], "b")
    wait_for(lambda: d.status()["dbs"][0]["replicas"][1]["lag_seconds"] > 0.3, what="lag")
    st, body = both(d, "/healthz?max-lag=200ms")
    assert st == 503, body
    (bad,) = body["unhealthy"]
    assert bad["replica"] == "slow" and bad["reason"].startswith("lags by ") and bad["lag_seconds"] > 0.2
    assert bad["last_error"] is None
    r = run("status", "-socket", d.sock, "-max-lag", "200ms")
    assert r.returncode == 1 and f"{d.db['app']}(slow): lags by " in r.stderr, r.stderr
    # Lag alone counts only against a limit.
    assert both(d, "/healthz")[0] == 200
    assert both(d, "/healthz?max-lag=1h")[0] == 200

    for q, word in (("max-lag=abc", "max-lag"), ("max-lag=-1s", "max-lag"), ("max-lag=", "max-lag"),
                    ("db=", "db"), ("maxlag=1s", "maxlag"), ("max-lag=%zz", "malformed")):
        st, body = both(d, "/healthz?" + q)
        assert st == 400 and word in body["error"], (q, body)
    st, body = both(d, "/healthz?db=nope")
    assert st == 404 and body["error"] == 'no database named "nope"'
    st, body, hdrs = d.call("POST", "/healthz")
    assert st == 405 and hdrs.get("Allow") == "GET, HEAD"
    # The metrics listener serves /metrics and /healthz only.
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=15)
    c.request("GET", "/metrics")
    assert c.getresponse().status == 200
    c.close()
    st, body = tcp(d.port, "/v1/status")
    assert st == 404 and "/healthz" in body["error"]
    assert d.stop() == 0


def test_unreachable_s3(litestream_bin, tmp_path, sockdir):
    db = tmp_path / "app.db"
    make_db(db)
    insert(db, "a")
    sock = os.path.join(sockdir, "ctl.sock")
    env = dict(os.environ, LITESTREAM_ACCESS_KEY_ID="AKIDEXAMPLE",
               LITESTREAM_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG")
    url = f"s3://bucket/app?endpoint=http://127.0.0.1:{free_port()}"
    rep = Replicator(litestream_bin, ["-socket", sock, db, url], tmp_path / "log", env=env)
    wait_for(lambda: os.path.exists(sock) or rep.proc.poll() is not None, what="control socket")
    # Behind from the start: max-lag sees it before the retries give up.
    wait_for(lambda: call(sock, "GET", "/healthz?max-lag=500ms")[0] == 503, timeout=10,
             what="lag past 500ms")
    st, body, _ = call(sock, "GET", "/healthz?max-lag=500ms&db=app.db")
    assert st == 503 and body["unhealthy"][0]["db"] == "app.db", body
    assert body["unhealthy"][0]["replica"] == "s3"
    # Then the error itself, with no limit given.
    wait_for(lambda: call(sock, "GET", "/healthz")[0] == 503, timeout=30, what="the S3 error")
    st, body, _ = call(sock, "GET", "/healthz")
    assert body["unhealthy"][0]["reason"].startswith("error: "), body
    rep.stop()
