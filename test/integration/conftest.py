"""Fixtures shared by the integration tests: the litestream binary under
test, scratch directories, and real WAL-mode SQLite databases."""
import os
import sqlite3
import subprocess

import pytest

pytest_plugins = ["s3server", "azurite", "sshd"]

SANITIZERS = os.environ.get("LITESTREAM_SANITIZERS") == "1"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timing: the claim is about time or lock waits on a plain build (lag, "
        "grouping, the WAL bound, no SQLITE_BUSY); skipped under LITESTREAM_SANITIZERS=1, "
        "where the binary runs 2-3x slower and the same code paths run in every other test")


def pytest_collection_modifyitems(config, items):
    if not SANITIZERS:
        return
    skip = pytest.mark.skip(reason="LITESTREAM_SANITIZERS=1: a timing claim, checked on the "
                            "plain build (the gcc half of CI)")
    for item in items:
        if item.get_closest_marker("timing") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def litestream_bin():
    path = os.environ.get("LITESTREAM_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("LITESTREAM_BIN must name the built litestream binary (run through make check)")
    return path


@pytest.fixture
def run(litestream_bin):
    """Runs `litestream ARGS...` to completion; returns the CompletedProcess."""
    def _run(*args, timeout=120, **kw):
        return subprocess.run([litestream_bin, *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, **kw)
    return _run


def open_wal_db(path, page_size=None):
    """A connection to a WAL-mode database at path (created if missing)."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    if page_size:
        conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@pytest.fixture(autouse=True)
def no_leftover_sidecars():
    """Kills any `litestream replicate` a test started and did not stop
    (a failed assertion must not leave a sidecar running for hours)."""
    yield
    import lsutil
    lsutil.kill_leftovers()
