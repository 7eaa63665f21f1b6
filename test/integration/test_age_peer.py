"""age-encrypted replicas shared with Litestream 0.3.13, both ways: its
replica (age.recipients) restores with ours (age-identities), ours
(age-recipients) restores with its (age.identities), and our daemon with
recipients only takes over its encrypted replica and goes on in the same
generation. Skipped unless LITESTREAM_PEER_0313 names the 0.3.13 binary."""
import os
import subprocess
import time

import pytest

from agekeys import Key, need_tools, objects
from lsutil import Replicator, assert_same, start_writers, wait_for, wait_writers
from test_age import file_conf, shadow_dir
from test_replicate import make_db

PEER = os.environ.get("LITESTREAM_PEER_0313")


@pytest.fixture(autouse=True)
def peer():
    if not PEER:
        pytest.skip("LITESTREAM_PEER_0313 is not set (path of a Litestream 0.3.13 binary)")
    if not os.access(PEER, os.X_OK):
        pytest.fail(f"LITESTREAM_PEER_0313={PEER} is not an executable")
    need_tools()


@pytest.fixture
def key(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return Key(d, "k")


def peer_conf(path, db, root, age):
    path.write_text(f"""dbs:
  - path: {db}
    replicas:
      - type: file
        path: {root}
        sync-interval: 100ms
        age:
{age}
""")
    return path


def peer_run(*args):
    return subprocess.run([PEER, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_peer_replica_restores_with_ours(litestream_bin, run, tmp_path, key):
    db, root = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conf = peer_conf(tmp_path / "peer.yml", db, root, f"          recipients: [{key.recipient}]")
    rep = Replicator(PEER, ["-config", conf], tmp_path / "peer.log")
    wait_writers(start_writers(db, [["--seed", 21, "--count", 150]]))
    wait_for(lambda: len(objects(root)) >= 2, what="0.3.13's objects")
    wait_for(lambda: "wal segment written" in rep.text(), what="a segment")
    time.sleep(1.5)  # its sync-interval, twice over
    assert rep.stop() == 0, rep.text()
    assert all(open(p, "rb").read(22) == b"age-encryption.org/v1\n" for p in objects(root))
    out = tmp_path / "restored.db"
    r = run("restore", "-config", file_conf(tmp_path, db, root, identities=(key.path,)),
            "-o", out, db)
    assert r.returncode == 0, r.stderr
    assert_same(db, out)

    # Our daemon, recipients only, takes the replica over: same generation,
    # no decryption, and the result restores with 0.3.13.
    ours = Replicator(litestream_bin, ["-config", file_conf(tmp_path, db, root,
                                                            recipients=(key.recipient,))],
                      tmp_path / "ours.log")
    wait_writers(start_writers(db, [["--seed", 22, "--count", 100]]))
    assert ours.stop() == 0, ours.text()
    log = ours.text()
    assert "resuming at" in log and "new generation" not in log and "ERROR" not in log, log
    # 0.3.13 keeps no record of where its last segment ends: that one goes again.
    assert "shipping it again from its start" in log, log
    out2 = tmp_path / "restored-by-peer.db"
    r = peer_run("restore", "-config", peer_conf(tmp_path / "peer-r.yml", db, root,
                                                 f"          identities: [{key.secret}]"),
                 "-o", out2, db)
    assert r.returncode == 0, r.stderr
    assert_same(db, out2)


def test_our_replica_restores_with_peer(litestream_bin, run, tmp_path, key):
    db, root = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", file_conf(tmp_path, db, root,
                                                           recipients=(key.recipient,))],
                     tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 23, "--count", 200, "--big-every", 100,
                                     "--big-bytes", 300000]]))
    assert rep.stop() == 0, rep.text()
    out = tmp_path / "restored.db"
    r = peer_run("restore", "-config", peer_conf(tmp_path / "peer-r.yml", db, root,
                                                 f"          identities: [{key.secret}]"),
                 "-o", out, db)
    assert r.returncode == 0, r.stderr
    assert_same(db, out)
    assert (shadow_dir(db) / "generation").exists()
