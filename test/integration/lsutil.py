"""Helpers for the integration tests: run litestream, write and compare
databases, wait for conditions."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WRITER = os.path.join(HERE, "writer.py")


def wait_for(cond, timeout=30, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# Every sidecar a test starts, so that none outlives its test (conftest).
RUNNING = []


def kill_leftovers():
    while RUNNING:
        rep = RUNNING.pop()
        if rep.proc.poll() is None:
            rep.proc.kill()
            rep.proc.wait()
        if not rep.log.closed:
            rep.log.close()


class Replicator:
    """A running `litestream replicate` process with its log in a file."""

    def __init__(self, binary, args, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([binary, "replicate", *map(str, args)],
                                     stdout=self.log, stderr=self.log, env=env)
        RUNNING.append(self)

    def text(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self.log.close()
            if self in RUNNING:
                RUNNING.remove(self)
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)


def start_writers(db, specs):
    """Starts one writer process per spec (a list of extra arguments)."""
    return [subprocess.Popen([sys.executable, WRITER, str(db), *map(str, spec)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for spec in specs]


def wait_writers(procs, timeout=600):
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"writer failed: {err}"


def dump(db_path):
    """Every table's rows, in order, and integrity_check's verdict."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchall()
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()
    return check, rows


def assert_same(source, restored):
    check, rows = dump(restored)
    assert check == [("ok",)], f"integrity_check of {restored}: {check}"
    _, expected = dump(source)
    assert sorted(rows) == sorted(expected), "tables differ"
    for table in expected:
        assert len(rows[table]) == len(expected[table]), f"{table}: row counts differ"
        assert rows[table] == expected[table], f"{table}: rows differ"


def restore(run, target, out, *extra):
    r = run("restore", "-o", out, *extra, target)
    assert r.returncode == 0, f"restore failed: {r.stderr}"
    return r
