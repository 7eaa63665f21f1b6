"""POST /v1/dbs and DELETE /v1/dbs/NAME through the real control socket:
a database started and stopped while the others run, shown in GET
/v1/status with how it was added, and every bad request answered with a
clear 4xx. Real SQLite writers, real restores."""
import json
import os
import sqlite3

from ctlutil import Daemon, insert, make_db, sockdir  # noqa: F401 (fixture)
from lsutil import assert_same, wait_for


def post(d, body, raw=False):
    data = body if raw else json.dumps(body)
    return d.call("POST", "/v1/dbs", body=data, headers={"Content-Type": "application/json"})


def test_add_and_remove(run, litestream_bin, tmp_path, sockdir):  # noqa: F811
    d = Daemon(litestream_bin, tmp_path, sockdir)
    try:
        new = str(tmp_path / "tenant.db")
        make_db(new)
        insert(new, "before")
        backup = tmp_path / "tenant-backup"
        st, body, _ = post(d, {"path": new, "replicas": [f"file://{backup}"], "name": "tenant"})
        assert st == 201, body
        assert body["name"] == "tenant" and body["added"] == "api", body
        insert(new, "after")
        st, body, _ = d.call("POST", "/v1/dbs/tenant/sync?wait=1&timeout=20s")
        assert st == 200, body
        added = {x["name"]: x["added"] for x in d.status()["dbs"]}
        assert added == {"app": "config", "tenant": "api"}, added

        # Bad requests, each with its own status and message.
        cases = [
            ("{not json", 400, "invalid JSON"),
            ("[1]", 400, "must be an object"),
            (json.dumps({"path": "rel.db", "replicas": ["file:///tmp/x"]}), 400, "absolute path"),
            (json.dumps({"path": new}), 400, "\"replicas\" must be an array"),
            (json.dumps({"path": new, "replicas": ["file:///tmp/x"], "extra": 1}), 400, "unknown field"),
            (json.dumps({"path": str(tmp_path / "missing.db"), "replicas": ["file:///tmp/x"]}),
             404, "no such file"),
            (json.dumps({"path": new, "replicas": ["file:///tmp/y"]}), 409, "replicated already"),
            (json.dumps({"path": d.db["app"], "replicas": ["file:///tmp/y"]}), 409, "added by config"),
        ]
        rollback = str(tmp_path / "rollback.db")
        conn = sqlite3.connect(rollback, isolation_level=None)
        conn.execute("CREATE TABLE t (x)")
        conn.close()
        cases.append((json.dumps({"path": rollback, "replicas": ["file:///tmp/z"]}), 422,
                      "rollback-journal mode"))
        text = tmp_path / "notes.db"
        text.write_text("plain text, not a database " * 10)
        cases.append((json.dumps({"path": str(text), "replicas": ["file:///tmp/z"]}), 422,
                      "not a SQLite database"))
        other = str(tmp_path / "other.db")
        make_db(other)
        cases.append((json.dumps({"path": other, "replicas": ["ftp://x/y"]}), 400, "ftp"))
        cases.append((json.dumps({"path": other, "replicas": ["file:///tmp/o"], "name": "app"}),
                      409, "called \"app\""))
        for body, want, msg in cases:
            st, resp, _ = post(d, body, raw=True)
            assert st == want, (body, st, resp)
            assert msg in resp["error"], (body, resp)
        st, resp, _ = d.call("DELETE", "/v1/dbs/nope")
        assert st == 404, resp

        st, body, _ = d.call("DELETE", "/v1/dbs/tenant")
        assert st == 202 and body["state"] == "closing", body
        wait_for(lambda: {x["name"] for x in d.status()["dbs"]} == {"app"}, what="tenant gone")
        wait_for(lambda: "tenant.db: closed" in d.rep.text(), what="tenant closed")
        insert(d.db["app"], "others keep going")
        st, body, _ = d.call("POST", "/v1/dbs/app/sync?wait=1&timeout=20s")
        assert st == 200, body
    finally:
        rc = d.stop()
    assert rc == 0, d.rep.text()
    out = tmp_path / "restored.db"
    r = run("restore", "-o", out, f"file://{backup}")
    assert r.returncode == 0, r.stderr
    assert_same(new, str(out))
