"""A replica that cannot be written (read-only file system, full disk):
errors are logged, nothing is lost, and replication catches up once the
fault clears. Uses a small tmpfs mounted by the test, and for I/O errors a
FUSE mirror that fails writes on demand (eiofs.py); both need root."""
import os
import re
import sqlite3
import subprocess
import sys
import time

import pytest

from lsutil import Replicator, assert_same, restore, start_writers, wait_for, wait_writers
from test_replicate import make_db


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def remount(mnt, mode):
    # "busy" while the sidecar has a file open for writing there: retry.
    for _ in range(100):
        r = subprocess.run(["mount", "-o", f"remount,{mode}", str(mnt)], capture_output=True, text=True)
        if r.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"remount {mode} {mnt}: {r.stderr}")


def test_read_only_replica_then_recovers(litestream_bin, run, tmp_path, small_fs):
    db, replica = tmp_path / "app.db", small_fs / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 1, "--count", 50]]))
    wait_for(lambda: (replica / "generations").exists(), what="first upload")
    remount(small_fs, "ro")
    try:
        wait_writers(start_writers(db, [["--seed", 2, "--count", 200]]))
        wait_for(lambda: "Read-only file system" in rep.text(), what="the error in the log")
        assert rep.proc.poll() is None
    finally:
        remount(small_fs, "rw")
    wait_writers(start_writers(db, [["--seed", 3, "--count", 20]]))
    wait_for(lambda: "replica healthy again" in rep.text(), timeout=30, what="recovery")
    assert rep.stop() == 0
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_full_disk_then_recovers(litestream_bin, run, tmp_path, small_fs):
    db, replica = tmp_path / "app.db", small_fs / "replica"
    make_db(db)
    filler = small_fs / "filler"
    # Leave about 64 KiB free.
    st = os.statvfs(small_fs)
    filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 64 * 1024))
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 4, "--count", 300]]))
    wait_for(lambda: "No space left on device" in rep.text(), what="the error in the log")
    assert rep.proc.poll() is None
    # Retried at 0.5, 1, 2, 4 s while the disk stays full: one ERROR line,
    # the rest wait for the minute (at debug level).
    time.sleep(6)
    errors = [l for l in rep.text().splitlines() if "ERROR" in l and "No space left" in l]
    assert len(errors) == 1, "\n".join(errors)
    assert str(small_fs) in errors[0], errors[0]
    # Nothing half-written is left under a final name.
    for root, _, files in os.walk(replica):
        for f in files:
            assert f.endswith(".lz4"), f
    filler.unlink()
    wait_for(lambda: "replica healthy again" in rep.text(), timeout=30, what="recovery")
    healthy = [l for l in rep.text().splitlines() if "replica healthy again" in l][0]
    n = int(re.search(r"after (\d+) failures? in", healthy).group(1))
    assert n >= 3, healthy
    assert rep.stop() == 0
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def fill(fs, leave):
    """Fills fs up to `leave` free bytes with one file; returns it."""
    filler = fs / "filler"
    st = os.statvfs(fs)
    filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - leave))
    return filler


def assert_no_restore_left(out):
    """A failed restore leaves no database, no temp file and no scratch directory."""
    left = [p.name for p in out.parent.iterdir() if p.name.startswith(out.name)]
    assert left == [], f"left behind: {left}"


def big_source(db, mib):
    make_db(db)
    wait_writers(start_writers(db, [["--seed", 30, "--count", 1, "--big-every", 1,
                                     "--big-bytes", mib << 20]]))


def test_restore_to_a_full_disk(litestream_bin, run, tmp_path, small_fs):
    """A restore that runs out of space fails with the reason and the path,
    exits non-zero and leaves nothing behind; with room it then succeeds."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    big_source(db, 6)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 31, "--count", 50]]))
    assert rep.stop() == 0
    filler = fill(small_fs, 2 << 20)
    out = small_fs / "restored.db"
    r = run("restore", "-o", out, f"file://{replica}")
    assert r.returncode != 0
    assert "No space left on device" in r.stderr and str(small_fs) in r.stderr, r.stderr
    assert_no_restore_left(out)
    filler.unlink()
    restore(run, f"file://{replica}", out)
    assert_same(db, out)


def write_until_full(db, rows=400, size=20000):
    """Commits rows of `size` bytes until SQLite reports the disk full (or
    `rows` are in); returns how many committed."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    done = 0
    for i in range(rows):
        try:
            conn.execute("INSERT INTO t (writer, n, payload) VALUES (9, ?, randomblob(?))", (i, size))
            done += 1
        except sqlite3.OperationalError as e:
            if "full" not in str(e):
                raise
            break
    conn.close()
    return done


def test_database_disk_full_then_recovers(litestream_bin, run, tmp_path, small_fs):
    """The database's own disk fills up (the shadow WAL lives beside it): the
    copy into the shadow WAL fails, is logged once (not once a second) with
    the path, nothing is checkpointed away uncopied, and once space returns
    replication goes on and the replica restores equal."""
    db, replica = small_fs / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 5, "--count", 20]]))
    wait_for(lambda: (replica / "generations").exists(), what="first upload")
    filler = fill(small_fs, 1 << 20)
    committed = write_until_full(db)
    assert committed > 0
    wait_for(lambda: "No space left on device" in rep.text(), what="the error in the log")
    time.sleep(4)  # syncs are retried every second
    errors = [l for l in rep.text().splitlines() if "ERROR" in l and "No space left" in l]
    assert len(errors) == 1, "\n".join(errors)
    # The file that could not be written: the shadow WAL beside the database.
    assert f"{small_fs}/.app.db-litestream/generations/" in errors[0], errors[0]
    assert rep.proc.poll() is None
    filler.unlink()
    wait_for(lambda: "sync working again" in rep.text(), timeout=30, what="recovery")
    wait_writers(start_writers(db, [["--seed", 6, "--count", 20]]))
    assert rep.stop() == 0, rep.text()
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


@pytest.fixture
def eio_fs(tmp_path):
    """A FUSE mirror (eiofs.py) that answers writes, fsyncs, creates and
    renames with EIO while its fault file says "eio"; yields (mount, fault)."""
    try:
        import fusepy  # noqa: F401
    except ImportError:
        pytest.skip("fusepy (Debian python3-fusepy) is not installed")
    back, mnt, fault = tmp_path / "back", tmp_path / "eio", tmp_path / "fault"
    back.mkdir()
    mnt.mkdir()
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, os.path.join(here, "eiofs.py"), str(back), str(mnt),
                             "--fault", str(fault)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not os.path.ismount(mnt):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip(f"cannot mount a FUSE file system here: {proc.stderr.read().strip()}")
        time.sleep(0.05)
    try:
        yield mnt, fault
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_io_errors_then_recovers(litestream_bin, run, tmp_path, eio_fs):
    """A file replica whose disk answers EIO (a FUSE mirror that fails every
    write, fsync and rename): the error is logged with the path, once while
    it lasts, the daemon keeps running, and when the disk works again
    everything ships in order: the restore is equal."""
    mnt, fault = eio_fs
    db, replica = tmp_path / "app.db", mnt / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, [db, f"file://{replica}"], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 40, "--count", 50]]))
    wait_for(lambda: any(f.endswith(".lz4") for _, _, fs in os.walk(replica) for f in fs),
             what="a first object on the FUSE replica")
    fault.write_text("eio")
    wait_writers(start_writers(db, [["--seed", 41, "--count", 200]]))
    wait_for(lambda: "Input/output error" in rep.text(), what="the I/O error in the log")
    time.sleep(3)
    assert rep.proc.poll() is None
    errors = [l for l in rep.text().splitlines() if "ERROR" in l and "Input/output error" in l]
    assert len(errors) == 1, "\n".join(errors)
    assert str(mnt) in errors[0], errors[0]
    fault.write_text("")
    wait_for(lambda: "replica healthy again" in rep.text(), timeout=30, what="recovery")
    assert rep.stop() == 0
    restore(run, f"file://{replica}", tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
