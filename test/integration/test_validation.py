"""validation-interval: the replica is restored on the side and compared
(CRC-64) with the database at the same position; a mismatch is logged
loudly and counted."""
import sqlite3
import time

import replica_tools as rt
from lsutil import Replicator, start_writers, wait_for, wait_writers
from test_replicate import make_db


def config(tmp_path, db, replica):
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"""
[db app]
path = {db}
min-checkpoint-page-count = 40

[replica file]
db = app
url = file://{replica}
validation-interval = 300ms
""")
    return conf


def test_validation_passes_under_writes(litestream_bin, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", config(tmp_path, db, replica)], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 1, "--seconds", 4, "--sleep", 0.002]]))
    wait_for(lambda: rep.text().count("validation ok") >= 3, timeout=30, what="three validations")
    assert rep.stop() == 0
    assert "VALIDATION FAILED" not in rep.text()
    assert "validation:" not in rep.text(), rep.text()


def test_validation_catches_a_wrong_replica(litestream_bin, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    # Data in the database file itself, so the snapshot matters to the result.
    wait_writers(start_writers(db, [["--seed", 4, "--count", 200]]))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    rep = Replicator(litestream_bin, ["-config", config(tmp_path, db, replica)], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 2, "--count", 50]]))
    wait_for(lambda: "validation ok" in rep.text(), timeout=30, what="a first validation")
    # Swap the snapshot for a valid database with other contents.
    other = rt.other_database(tmp_path / "other.db")
    (gen,) = rt.generations(replica)
    for _, path in rt.snapshots(replica, gen):
        rt.lz4_compress(other.read_bytes(), path)
    wait_writers(start_writers(db, [["--seed", 3, "--count", 20]]))
    wait_for(lambda: "VALIDATION FAILED" in rep.text(), timeout=30, what="the mismatch")
    assert rep.stop() == 0


def test_validation_of_an_idle_database_with_an_empty_wal(litestream_bin, tmp_path):
    """A database whose WAL is empty at start gets a generation with no
    shadow WAL file until the first write (the sidecar never writes to
    it): validating it compares the snapshot with the file alone."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO t (writer, n, payload) VALUES (1, 1, x'01')")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    rep = Replicator(litestream_bin, ["-config", config(tmp_path, db, replica)], tmp_path / "log")
    wait_for(lambda: rep.text().count("validation ok") >= 2, timeout=30, what="two validations")
    assert rep.stop() == 0
    assert "validation:" not in rep.text(), rep.text()
    assert "VALIDATION FAILED" not in rep.text()
