"""SIGHUP reloads the configuration file: added databases start, removed
ones ship what is left and close, changed ones restart, unchanged ones are
not touched (no new generation, no upload: their replicas' objects are
counted), and a file that does not parse is refused with the running set
kept. Real SQLite writers, a real control socket."""
import os
import signal
import sqlite3
import time

from ctlutil import call, make_db, sockdir  # noqa: F401 (fixture)
from lsutil import Replicator, wait_for


def conf_text(sock, tmp_path, dbs, extra=None):
    lines = ["[litestream]", f"socket = {sock}"]
    for name, opts in dbs.items():
        lines += [f"[db {name}]", f"path = {tmp_path / (name + '.db')}", opts,
                  f"[replica {name}-r]", f"db = {name}", "type = file",
                  f"path = {tmp_path / 'backup' / name}"]
    lines += extra or []
    return "\n".join(lines) + "\n"


def objects(path):
    out = set()
    for d, _, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            out.add((os.path.relpath(p, path), os.stat(p).st_mtime_ns))
    return out


def names(sock):
    st, body, _ = call(sock, "GET", "/v1/status")
    assert st == 200, body
    return {d["name"]: d for d in body["dbs"]}


def insert(path, v):
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("INSERT INTO kv (v) VALUES (?)", (v,))
    conn.close()


def sync_wait(sock, name):
    st, body, _ = call(sock, "POST", f"/v1/dbs/{name}/sync?wait=1&timeout=20s")
    assert st == 200, body


def test_sighup_reload(litestream_bin, tmp_path, sockdir):  # noqa: F811
    sock = os.path.join(sockdir, "ctl.sock")
    for n in ("same", "gone", "changed", "added"):
        make_db(str(tmp_path / f"{n}.db"))
        insert(tmp_path / f"{n}.db", "first")
    conf = tmp_path / "litestream.conf"
    conf.write_text(conf_text(sock, tmp_path, {"same": "", "gone": "", "changed": ""}))
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    try:
        wait_for(lambda: os.path.exists(sock) and set(names(sock)) == {"same", "gone", "changed"},
                 what="three databases")
        for n in ("same", "gone", "changed"):
            insert(tmp_path / f"{n}.db", "while running")
            sync_wait(sock, n)
        time.sleep(0.3)
        before = objects(tmp_path / "backup" / "same")
        assert any("snapshots" in p for p, _ in before)
        gen_changed = os.listdir(tmp_path / "backup" / "changed" / "generations")

        conf.write_text(conf_text(sock, tmp_path, {
            "same": "", "changed": "monitor-interval = 200ms", "added": ""}))
        rep.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: set(names(sock)) == {"same", "changed", "added"}, what="the reloaded set")
        wait_for(lambda: "gone.db: closed" in rep.text(), what="gone closed")
        sync_wait(sock, "added")
        insert(tmp_path / "changed.db", "after reload")
        sync_wait(sock, "changed")
        time.sleep(1.2)  # a second of monitor ticks of the unchanged database
        assert objects(tmp_path / "backup" / "same") == before, "the unchanged database was touched"
        # The changed one restarted where its replica was: same generation.
        assert os.listdir(tmp_path / "backup" / "changed" / "generations") == gen_changed

        # A file that does not parse: refused, logged, the set stays.
        conf.write_text(conf_text(sock, tmp_path, {"same": ""}) + "[db broken]\nmonitor-interval = x\n")
        rep.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration refused" in rep.text(), what="the refusal")
        assert set(names(sock)) == {"same", "changed", "added"}
        insert(tmp_path / "same.db", "still replicated")
        sync_wait(sock, "same")
        assert rep.proc.poll() is None
    finally:
        rc = rep.stop()
    log = rep.text()
    assert rc == 0, log
    assert "SIGHUP: configuration refused, the running one stays:" in log
    assert "litestream.conf:" in log.split("configuration refused")[1].splitlines()[0]
    assert "reloaded: 1 database unchanged" in log, log
    assert " ERROR " not in log.replace("ERROR SIGHUP: configuration refused", ""), log
    assert "handles still open" not in log


def test_sighup_dir(litestream_bin, tmp_path, sockdir):  # noqa: F811
    """A [dir] added by SIGHUP starts its databases; one changed restarts
    them; one removed stops them, the [db] beside it untouched."""
    sock = os.path.join(sockdir, "ctl.sock")
    tenants = tmp_path / "tenants"
    os.mkdir(tenants)
    for n in ("a", "b"):
        make_db(str(tenants / f"{n}.db"))
    make_db(str(tmp_path / "same.db"))
    conf = tmp_path / "litestream.conf"
    base = conf_text(sock, tmp_path, {"same": ""})
    conf.write_text(base)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    dir_text = ["[dir t]", f"path = {tenants}", "[replica tr]", "db = t", "type = file",
                f"path = {tmp_path / 'tb'}"]
    try:
        wait_for(lambda: os.path.exists(sock) and set(names(sock)) == {"same"}, what="start")
        conf.write_text(conf_text(sock, tmp_path, {"same": ""}, dir_text))
        rep.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: set(names(sock)) == {"same", "t/a.db", "t/b.db"}, what="the dir's databases")
        assert {d["added"] for n, d in names(sock).items() if n != "same"} == {"dir t"}
        conf.write_text(conf_text(sock, tmp_path, {"same": ""}, dir_text[:2] + ["pattern = a*.db"] + dir_text[2:]))
        rep.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: set(names(sock)) == {"same", "t/a.db"}, what="the changed dir")
        conf.write_text(base)
        rep.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: set(names(sock)) == {"same"}, what="the dir removed")
        wait_for(lambda: rep.text().count("a.db: closed") == 2, what="a.db closed twice")
    finally:
        rc = rep.stop()
    log = rep.text()
    assert rc == 0, log
    assert " ERROR " not in log, log
    assert "reloaded: 1 database unchanged" in log
