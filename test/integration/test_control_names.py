"""Addressing a database on the control socket by what `litestream status`
shows, as written: in URL mode the database file's name, or its absolute
path with the slashes as they are (POST /v1/dbs//var/lib/app/app.db/sync)
or percent-encoded; in config mode the [db] section's name (slashes too)
and the path. A real HTTP client on the real Unix socket, and curl."""
import json
import os
import shutil
import subprocess
import urllib.parse

from ctlutil import call, insert, make_db, sockdir  # noqa: F401 (sockdir: a fixture)
from lsutil import Replicator, assert_same, restore, wait_for


def test_url_mode_names(litestream_bin, run, tmp_path, sockdir):
    db = tmp_path / "data" / "app.db"
    db.parent.mkdir()
    make_db(db)
    sock = os.path.join(sockdir, "ctl.sock")
    rep = Replicator(litestream_bin, ["-socket", sock, db, f"file://{tmp_path / 'replica'}"],
                     tmp_path / "log")
    wait_for(lambda: os.path.exists(sock) or rep.proc.poll() is not None, what="control socket")
    path = str(db)
    encoded = urllib.parse.quote(path, safe="")

    st, body, _ = call(sock, "GET", "/v1/status")
    assert st == 200
    (d,) = body["dbs"]
    assert d["name"] == "app.db" and d["path"] == path
    r = run("status", "-socket", sock)
    assert r.returncode == 0, r.stderr
    assert any(line.split()[:2] == ["app.db", path] for line in r.stdout.splitlines()), r.stdout

    # Every way of writing it reaches the same database, for every route.
    for name in ("app.db", path, encoded, "%2F" + path[1:], path.replace("/", "%2f", 2)):
        st, one, _ = call(sock, "GET", f"/v1/dbs/{name}")
        assert st == 200 and one["path"] == path, (name, one)
        insert(db, name)
        st, body, _ = call(sock, "POST", f"/v1/dbs/{name}/sync?wait=1&timeout=10s")
        assert st == 200 and body["replicated"] is True, (name, body)
    st, body, _ = call(sock, "POST", f"/v1/dbs/{path}/checkpoint?mode=TRUNCATE&timeout=10s")
    assert st == 200 and body["mode"] == "TRUNCATE", body
    st, body, _ = call(sock, "POST", f"/v1/dbs/{path}/snapshot?wait=1&timeout=10s")
    assert st == 200, body
    # The methods still matter, and what is no database or action is a 404.
    st, body, hdrs = call(sock, "GET", f"/v1/dbs/{path}/sync")
    assert st == 405 and hdrs.get("Allow") == "POST"
    st, body, _ = call(sock, "POST", f"/v1/dbs/{path}/frobnicate")
    assert st == 404 and "sync, checkpoint, snapshot or verify" in body["error"]
    st, body, _ = call(sock, "POST", f"/v1/dbs/{tmp_path}/other.db/sync")
    assert st == 404 and body["error"] == f'no database named "{tmp_path}/other.db"'
    st, body, _ = call(sock, "GET", "/v1/dbs/data/app.db")  # a suffix of the path is no name
    assert st == 404
    if shutil.which("curl"):
        p = subprocess.run(["curl", "-sS", "--path-as-is", "--unix-socket", sock, "-X", "POST",
                            f"http://localhost/v1/dbs/{path}/sync?wait=1&timeout=10s"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and json.loads(p.stdout)["replicated"] is True, p.stdout + p.stderr
    assert rep.stop() == 0
    out = tmp_path / "restored.db"
    restore(run, f"file://{tmp_path / 'replica'}", out)
    assert_same(db, out)


def test_config_mode_names(litestream_bin, tmp_path, sockdir):
    sock = os.path.join(sockdir, "ctl.sock")
    paths = {"app": tmp_path / "app.db", "sync": tmp_path / "sync.db", "team/main": tmp_path / "team.db"}
    lines = ["[litestream]", f"socket = {sock}"]
    for i, (name, path) in enumerate(paths.items()):
        make_db(path)
        lines += [f"[db {name}]", f"path = {path}", "monitor-interval = 200ms",
                  f"[replica r{i}]", f"db = {name}", "type = file", f"path = {tmp_path / f'r{i}'}"]
    conf = tmp_path / "litestream.conf"
    conf.write_text("\n".join(lines) + "\n")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_for(lambda: os.path.exists(sock) or rep.proc.poll() is not None, what="control socket")
    assert rep.proc.poll() is None, rep.text()

    st, body, _ = call(sock, "GET", "/v1/status")
    assert sorted(x["name"] for x in body["dbs"]) == ["app", "sync", "team/main"]
    team = str(paths["team/main"])
    # Section names as written (a slash in one, an action's word as another), and paths.
    for name, want in (("app", paths["app"]), (str(paths["app"]), paths["app"]),
                       ("sync", paths["sync"]), ("team/main", team), ("team%2Fmain", team),
                       (team, team)):
        st, one, _ = call(sock, "GET", f"/v1/dbs/{name}")
        assert st == 200 and one["path"] == str(want), (name, one)
        st, body, _ = call(sock, "POST", f"/v1/dbs/{name}/sync?wait=1&timeout=10s")
        assert st == 200 and body["replicated"] is True, (name, body)
    st, body, _ = call(sock, "POST", "/v1/dbs/team/main/checkpoint")
    assert st == 200, body
    st, body, _ = call(sock, "POST", "/v1/dbs/sync/sync")
    assert st == 200, body
    st, body, _ = call(sock, "POST", "/v1/dbs/nope/sync")
    assert st == 404 and body["error"] == 'no database named "nope"'
    st, body, _ = call(sock, "GET", "/v1/dbs/%zz")
    assert st == 404
    assert rep.stop() == 0
