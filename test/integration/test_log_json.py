"""log-format = json and -log-format: every line litestream writes on
standard error is one JSON object (json.loads on each line, nothing else
on stdout), with the fields container log collectors index: time, level,
msg, and db, replica, position, error where the line has them. A database
path full of quotes, backslashes and non-ASCII characters goes through
the real daemon and back out intact."""
import json
import os
import re
import subprocess

import pytest

from ctlutil import call, insert, make_db, sockdir  # noqa: F401 (sockdir: a fixture)
from lsutil import RUNNING, wait_for

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
POSITION = re.compile(r"[0-9a-f]{16}/[0-9a-f]{8}:\d+")
KEYS = {"time", "level", "msg", "db", "replica", "position", "error"}


class Proc:
    """`litestream replicate ARGS` with stdout and stderr in separate files."""

    def __init__(self, binary, tmp_path, args, name="run"):
        self.out = tmp_path / f"{name}.stdout"
        self.err = tmp_path / f"{name}.stderr"
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen([binary, "replicate", *map(str, args)], stdout=o, stderr=e)
        self.log = open(os.devnull, "rb")  # what lsutil.kill_leftovers() closes
        RUNNING.append(self)

    def text(self):
        return self.err.read_text(errors="replace")

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=60)
        self.log.close()
        RUNNING.remove(self)
        return rc


def json_lines(text):
    """Each line parsed; fails naming the first line that is not one JSON object."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            o = json.loads(line)
        except ValueError as e:
            pytest.fail(f"line {n} is not JSON ({e}): {line!r}")
        assert isinstance(o, dict), line
        assert set(o) <= KEYS, f"unexpected keys in {line!r}"
        assert TIME.fullmatch(o["time"]), line
        assert o["level"] in ("DEBUG", "INFO", "WARN", "ERROR"), line
        assert isinstance(o["msg"], str), line
        for k in set(o) - {"time", "level", "msg"}:
            assert isinstance(o[k], str) and o[k], f"{k} in {line!r}"
        if "position" in o:
            assert POSITION.fullmatch(o["position"]), line
        out.append(o)
    assert out, "no log lines"
    return out


def find(lines, pred, what):
    for o in lines:
        if pred(o):
            return o
    pytest.fail(f"no line with {what} among:\n" + "\n".join(map(json.dumps, lines)))


def test_json_lines_from_the_daemon(litestream_bin, run, tmp_path, sockdir):
    # The nastiest path a file system takes: quotes, backslash, tab, non-ASCII.
    nasty = tmp_path / 'we"ird \\ tab\t caf\u00e9 \u2603.db'
    app = tmp_path / "app.db"
    make_db(app)
    make_db(nasty)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    sock = os.path.join(sockdir, "ctl.sock")
    conf = tmp_path / "litestream.conf"
    conf.write_text("\n".join([
        "[litestream]", f"socket = {sock}", "log-level = debug", "log-format = json",
        "[db app]", f"path = {app}", "monitor-interval = 200ms",
        "[db nasty]", f"path = {nasty}", "monitor-interval = 200ms",
        "[replica good]", "db = app", "type = file", f"path = {tmp_path / 'good'}",
        "[replica weird]", "db = nasty", "type = file", f"path = {tmp_path / 'weird'}",
        "[replica broken]", "db = app", "type = file", f"path = {blocker / 'replica'}",
    ]) + "\n")
    p = Proc(litestream_bin, tmp_path, ["-config", conf])
    wait_for(lambda: os.path.exists(sock), what="control socket")
    insert(app, "one")
    insert(nasty, "two")
    for name in ("app", "nasty"):
        assert call(sock, "POST", f"/v1/dbs/{name}/sync")[0] == 200
    wait_for(lambda: '"replica":"broken","error"' in p.text(), what="the broken replica's error")
    wait_for(lambda: p.text().count("snapshot written") >= 2, what="two snapshots")
    assert p.stop() == 1  # the broken replica could not ship its last bytes
    assert p.out.read_text() == ""
    lines = json_lines(p.text())

    find(lines, lambda o: o["msg"].startswith("litestream v") and "db" not in o, "the banner")
    o = find(lines, lambda o: o["msg"].startswith("replicating to") and o.get("replica") == "good",
             "the good replica's start")
    assert o["db"] == str(app) and o["level"] == "INFO"
    snap = find(lines, lambda o: o["msg"].startswith("snapshot written") and o.get("db") == str(nasty),
                "the nasty database's snapshot")
    assert snap["replica"] == "weird" and POSITION.fullmatch(snap["position"])
    err = find(lines, lambda o: o.get("replica") == "broken" and "error" in o, "the broken replica's error")
    assert err["level"] == "ERROR" and err["db"] == str(app)
    assert "Not a directory" in err["error"] or "not a directory" in err["error"].lower(), err
    # The message no longer repeats the error; the text form joins them (below).
    assert err["error"] not in err["msg"]
    find(lines, lambda o: o["msg"] == "litestream stopped", "the last line")

    # Restarted: the position the replica resumes at is a field.
    p = Proc(litestream_bin, tmp_path, ["-config", conf], name="again")
    wait_for(lambda: "resuming at" in p.text(), what="resuming")
    assert p.stop() == 1  # the broken replica again
    lines = json_lines(p.text())
    o = find(lines, lambda o: o["msg"].startswith("resuming at") and o.get("replica") == "weird",
             "the resume of the nasty database")
    assert o["db"] == str(nasty) and o["msg"] == "resuming at " + o["position"]

    # -log-format wins over the file: text, with the error after the message.
    p = Proc(litestream_bin, tmp_path, ["-log-format", "text", "-config", conf], name="text")
    wait_for(lambda: "(broken): " in p.text(), what="the broken replica's error, as text")
    assert p.stop() == 1  # the broken replica again
    text = p.text()
    assert not text.lstrip().startswith("{")
    line = next(l for l in text.splitlines() if "(broken): " in l and " ERROR " in l)
    assert re.match(TIME.pattern + r" ERROR " + re.escape(str(app)) + r"\(broken\): .+: .+", line), line


def test_flag_in_url_mode_and_restore(litestream_bin, run, tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    insert(db, "x")
    rep = tmp_path / "replica"
    p = Proc(litestream_bin, tmp_path, ["-log-format", "JSON", db, f"file://{rep}"])
    wait_for(lambda: "snapshot written" in p.text(), what="a snapshot")
    assert p.stop() == 0
    lines = json_lines(p.text())
    find(lines, lambda o: o.get("replica") == "file" and o["msg"].startswith("snapshot written"),
         "the URL-mode snapshot")

    # restore -v logs its steps through the same logger.
    out = tmp_path / "restored.db"
    r = run("restore", "-v", "-log-format", "json", "-o", out, f"file://{rep}")
    assert r.returncode == 0, r.stderr
    lines = json_lines(r.stderr)
    assert all(o.get("db") == str(out) for o in lines if "db" in o)
    assert any("db" in o for o in lines)
    # ... and follows the file's log-format when it reads one.
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"[litestream]\nlog-format = json\n[db app]\npath = {db}\n"
                    f"[replica r]\ndb = app\nurl = file://{rep}\n")
    out2 = tmp_path / "restored2.db"
    r = run("restore", "-v", "-config", conf, "-o", out2, db)
    assert r.returncode == 0, r.stderr
    json_lines(r.stderr)
    r = run("restore", "-v", "-log-format", "text", "-config", conf, "-o", tmp_path / "r3.db", db)
    assert r.returncode == 0 and not r.stderr.startswith("{"), r.stderr


def test_bad_values(litestream_bin, run, tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    conf = tmp_path / "bad.conf"
    conf.write_text(f"[litestream]\nlog-level = info\nlog-format = logfmt\n[db app]\npath = {db}\n")
    r = run("replicate", "-config", conf, timeout=30)
    assert r.returncode == 1
    assert f"{conf}:3: [litestream] log-format: invalid log format \"logfmt\" (want text or json)" in r.stderr
    r = run("replicate", "-log-format", "yaml", db, f"file://{tmp_path / 'r'}", timeout=30)
    assert r.returncode == 2 and 'invalid -log-format "yaml" (want text or json)' in r.stderr
    r = run("restore", "-log-format", "", "-o", tmp_path / "x.db", f"file://{tmp_path / 'r'}")
    assert r.returncode == 2 and "invalid -log-format" in r.stderr
    assert "-log-format" in run("replicate", "-h").stdout
