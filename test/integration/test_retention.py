"""Snapshots on a timer and retention with a fast clock: old snapshots,
segments and generations go; the newest snapshot and everything a restore
to the latest state needs stay."""
import os
import sqlite3
import time

import replica_tools as rt
from lsutil import Replicator, assert_same, restore, start_writers, wait_for, wait_writers
from test_replicate import make_db


def test_snapshot_interval_and_retention(litestream_bin, run, tmp_path):
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"""
[db app]
path = {db}
min-checkpoint-page-count = 50

[replica file]
db = app
url = file://{replica}
snapshot-interval = 700ms
retention = 2s
retention-check-interval = 500ms
""")
    # An old generation that retention must remove whole.
    old = replica / "generations" / "00000000000000aa" / "snapshots"
    old.mkdir(parents=True)
    stale = old / "00000000.snapshot.lz4"
    rt.lz4_compress(b"stale", str(stale))
    past = time.time() - 3600
    os.utime(stale, (past, past))

    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    writers = start_writers(db, [["--seed", 1, "--seconds", 6, "--sleep", 0.005]])
    (gen,) = [None]

    def trimmed():
        gens = rt.generations(replica)
        if "00000000000000aa" in gens or len(gens) != 1:
            return False
        snaps = rt.snapshots(replica, gens[0])
        return len(snaps) >= 1 and snaps[0][0] > 0
    wait_writers(writers)
    wait_for(trimmed, timeout=30, what="retention to trim the replica")
    assert rep.stop() == 0, rep.text()
    assert "retention: removed" in rep.text()
    (gen,) = rt.generations(replica)
    snaps = rt.snapshots(replica, gen)
    first = snaps[0][0]
    # Nothing before the oldest kept snapshot's index remains.
    assert all(index >= first for index, _, _, _ in rt.segments(replica, gen))
    out = tmp_path / "restored.db"
    restore(run, f"file://{replica}", out)
    assert_same(db, out)
