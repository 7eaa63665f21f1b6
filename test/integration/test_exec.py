"""`replicate -exec CMD` (and the `exec` key): litestream runs the
application as its child, passes it SIGINT/SIGTERM, and when the child
exits it ships what is left and exits with the child's status."""
import os
import shlex
import signal
import subprocess
import sys
import time

from lsutil import WRITER, Replicator, assert_same, restore, wait_for
from test_replicate import make_db

# A child that writes until told to stop, then says so and exits 0.
GRACEFUL = """
import signal, sqlite3, sys, time
stop = False
def on_term(signum, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
open(sys.argv[2], "w").close()
i = 0
while not stop:
    conn.execute("INSERT INTO t (writer, n, payload) VALUES (9, ?, randomblob(300))", (i,))
    i += 1
    time.sleep(0.005)
conn.close()
print("child stopped cleanly after", i, "rows", flush=True)
"""


def writer_cmd(db, *args):
    return shlex.join([sys.executable, WRITER, str(db), *map(str, args)])


def run_replicate(litestream_bin, args, timeout=120):
    return subprocess.run([litestream_bin, "replicate", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_exits_with_the_child_after_shipping_everything(litestream_bin, run, tmp_path):
    """The child writes and exits 0: litestream exits 0, and every commit
    of the child is in the replica."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    r = run_replicate(litestream_bin, ["-exec", writer_cmd(db, "--seed", 1, "--count", 300),
                                       db, f"file://{replica}"])
    assert r.returncode == 0, r.stderr
    assert "exec process exited (exit status 0), litestream shutting down" in r.stderr
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_child_status_is_litestreams(litestream_bin, run, tmp_path):
    """A child that fails (status 3) makes litestream exit 3, after the
    final sync; its standard output is litestream's."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
              "c.execute(\"INSERT INTO t (writer, n) VALUES (1, 42)\"); print('child says hi'); "
              "sys.exit(3)")
    cmd = shlex.join([sys.executable, "-c", script, str(db)])
    r = run_replicate(litestream_bin, ["-exec", cmd, db, f"file://{replica}"])
    assert r.returncode == 3, r.stderr
    assert "child says hi" in r.stdout
    assert "exec process exited (exit status 3)" in r.stderr
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_signal_goes_to_the_child_first(litestream_bin, run, tmp_path):
    """SIGTERM to litestream is passed to the child, which stops on its
    own terms; litestream waits for it, ships its last commits and exits 0.
    The `exec` key of the configuration names the command."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    started = tmp_path / "started"
    make_db(db)
    child = tmp_path / "child.py"
    child.write_text(GRACEFUL)
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"[litestream]\nexec = {shlex.join([sys.executable, str(child), str(db), str(started)])}\n"
                    f"[db app]\npath = {db}\n[replica file]\ndb = app\nurl = file://{replica}\n")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_for(lambda: started.exists(), what="the child to start")
    time.sleep(0.3)
    assert rep.stop(signal.SIGTERM) == 0, rep.text()
    log = rep.text()
    assert "sending it to the exec process" in log, log
    assert "child stopped cleanly after" in log, log
    assert "exec process exited (exit status 0)" in log, log
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_child_killed_by_another_signal(litestream_bin, tmp_path):
    """A child killed outright (SIGKILL, not passed by litestream) makes
    litestream exit 128 + 9, as a shell would report it."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    pidfile = tmp_path / "pid"
    cmd = shlex.join(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"])
    rep = Replicator(litestream_bin, ["-exec", cmd, db, f"file://{replica}"], tmp_path / "log")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the child's pid")
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert rep.proc.wait(timeout=30) == 137, rep.text()
    rep.stop()
    assert "killed by signal 9" in rep.text()


def test_flag_overrides_the_configuration(litestream_bin, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"[litestream]\nexec = sh -c 'exit 5'\n"
                    f"[db app]\npath = {db}\n[replica file]\ndb = app\nurl = file://{replica}\n")
    r = run_replicate(litestream_bin, ["-config", conf, "-exec", "sh -c 'exit 4'"])
    assert r.returncode == 4, r.stderr


def test_bad_commands(litestream_bin, tmp_path):
    """A command that does not parse stops the start (2 for the flag, 1 for
    the configuration, naming the file); one that cannot start ends
    replication at once with 1, naming the program."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    r = run_replicate(litestream_bin, ["-exec", "echo 'oops", db, f"file://{replica}"])
    assert r.returncode == 2
    assert "-exec \"echo 'oops\": unterminated ' (opened at character 6)" in r.stderr
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"[litestream]\nexec = echo \\\n"
                    f"[db app]\npath = {db}\n[replica file]\ndb = app\nurl = file://{replica}\n")
    r = run_replicate(litestream_bin, ["-config", conf])
    assert r.returncode == 1
    assert f"{conf}: [litestream] exec = echo \\: a backslash ends the command" in r.stderr
    r = run_replicate(litestream_bin, ["-exec", "/nonexistent/app --port 1", db, f"file://{replica}"])
    assert r.returncode == 1
    assert "cannot start exec command /nonexistent/app: no such file or directory" in r.stderr
