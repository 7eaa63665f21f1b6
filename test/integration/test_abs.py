"""litestream against Azure Blob Storage's emulator, Azurite (the azurite
fixture, azurite.py): real SQLite databases written by real processes, the
real binary, and a Shared Key client of the test's own to check what was
stored. Replication, kill -9 and resumption, restore; a snapshot above
part-size in blocks; listings in pages of two; a wrong key and a missing
container (clear errors with a hint); a SAS token; metrics; faults through
the fault proxy (503 ServerBusy, resets) and Azurite itself stopped and
restarted under writes.
"""
import base64
import hashlib
import hmac
import os
import re
import signal
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from azurite import free_port
from ctlutil import call as ctl_call
from lsutil import Replicator, assert_same, start_writers, wait_for, wait_writers
from test_replicate import make_db
from test_s3 import MITMDUMP, Proxy, big_db, replica_status, shadow_dir



def ls_env(**extra):
    """litestream's environment: none of the caller's AWS, Azure or LITESTREAM settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "AZURE_", "LITESTREAM_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def write_conf(path, db, az, prefix, endpoint=None, metrics_port=None, db_extra="", **replica):
    keys = {
        "url": f"abs://{az.account}@{az.container}/{prefix}",
        "endpoint": endpoint or az.endpoint,
        "account-key": az.key,
        "sync-interval": "200ms",
    }
    keys.update({k.replace("_", "-"): v for k, v in replica.items()})
    lines = "\n".join(f"{k} = {v}" for k, v in keys.items() if v is not None)
    metrics = f"metrics-addr = 127.0.0.1:{metrics_port}\n" if metrics_port else ""
    path.write_text(f"""[litestream]
socket = {db.parent / "ls.sock"}
{metrics}
[db app]
path = {db}
monitor-interval = 100ms
{db_extra}

[replica az]
db = app
{lines}
""")
    return path


def restore(run, conf, db, out, env=None, *extra):
    r = run("restore", "-config", conf, "-o", out, *extra, db, env=env or ls_env())
    assert r.returncode == 0, f"restore failed: {r.stderr}"
    return r


class Container:
    """The module's Azurite with a container of this test's own."""

    def __init__(self, server, container):
        self.server, self.container = server, container
        self.account, self.key = server.account, server.key
        self.endpoint, self.port = server.endpoint, server.port

    def list_blobs(self, prefix=""):
        return self.server.list_blobs(self.container, prefix)

    def block_list(self, name):
        return self.server.block_list(self.container, name)


@pytest.fixture
def az(azurite, request):
    if azurite.proc is None or azurite.proc.poll() is not None:
        azurite.start()
    name = "t-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:20]
    azurite.create_container(name)
    return Container(azurite, name)


def test_replicate_kill_resume_restore(litestream_bin, run, tmp_path, az):
    """Replicate, kill -9, restart (same generation, nothing rewritten),
    restore equal; the layout is 0.3's under PATH; metrics say abs."""
    db, prefix = tmp_path / "app.db", "app"
    port = free_port()
    conf = write_conf(tmp_path / "ls.conf", db, az, prefix, metrics_port=port)
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log1", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 1, "--count", 200, "--sleep", 0.002],
                                    ["--seed", 2, "--count", 200, "--sleep", 0.002]]))
    wait_for(lambda: any("/wal/" in k for k in az.list_blobs(prefix + "/")),
             what="a WAL segment in the container")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert re.search(r'replica_type="abs"', metrics), metrics[:2000]
    rep.kill()
    before = az.list_blobs(prefix + "/")
    gen = (shadow_dir(db) / "generation").read_text().strip()
    assert all(re.fullmatch(rf"{prefix}/generations/{gen}/(snapshots/[0-9a-f]{{8}}\.snapshot"
                            rf"|wal/[0-9a-f]{{8}}_[0-9a-f]{{8}}\.wal)\.lz4", k) for k in before), before

    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log2", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 3, "--count", 200]]))
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "resuming at" in log and "new generation" not in log, log
    assert "ERROR" not in log and az.key not in log, log
    after = az.list_blobs(prefix + "/")
    for k, size in before.items():
        assert after.get(k) == size, f"{k} rewritten or removed"
    assert len(after) > len(before)
    restore(run, conf, db, tmp_path / "restored.db", None, "-parallelism", "3")
    assert_same(db, tmp_path / "restored.db")
    # The listing commands read the same container.
    r = run("generations", "-config", conf, db, env=ls_env())
    assert r.returncode == 0 and gen in r.stdout, r.stderr


def test_snapshot_in_blocks(litestream_bin, run, tmp_path, az):
    """A snapshot above part-size goes up as Put Blocks and one Put Block
    List, and restores (through ranged Get Blobs)."""
    db, prefix = tmp_path / "app.db", "big"
    big_db(db, 3)
    conf = write_conf(tmp_path / "ls.conf", db, az, prefix, part_size="1MiB")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 6, "--count", 20]]))
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    snaps = [k for k in az.list_blobs(prefix + "/") if k.endswith(".snapshot.lz4")]
    assert len(snaps) == 1
    blocks = az.block_list(snaps[0])
    assert len(blocks) >= 3, blocks
    assert len(set(map(len, blocks))) == 1, blocks
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_listing_in_pages(litestream_bin, run, tmp_path, az):
    """List Blobs in pages of two (markers followed to the end): start-up
    finds its place, `wal` lists every segment, restore is whole."""
    db, prefix = tmp_path / "app.db", "paged"
    conf = write_conf(tmp_path / "ls.conf", db, az, prefix)
    make_db(db)
    env = ls_env(LITESTREAM_S3_MAX_KEYS=2)
    for seed in (7, 8):
        rep = Replicator(litestream_bin, ["-config", conf], tmp_path / f"log{seed}", env=env)
        wait_writers(start_writers(db, [["--seed", seed, "--count", 300, "--sleep", 0.004]]))
        assert rep.stop() == 0, rep.text()
    assert "resuming at" in rep.text(), rep.text()
    wal = [k for k in az.list_blobs(prefix + "/") if "/wal/" in k]
    assert len(wal) > 4, wal
    r = run("wal", "-config", conf, db, env=env)
    assert r.returncode == 0, r.stderr
    listed = [ln for ln in r.stdout.splitlines()[1:] if ln.strip()]
    assert len(listed) == len(wal), (r.stdout, wal)
    restore(run, conf, db, tmp_path / "restored.db", env=env)
    assert_same(db, tmp_path / "restored.db")


def test_retention_and_validation(litestream_bin, run, tmp_path, az):
    """Validation restores the replica on the side (ranged Get Blobs) and
    finds it equal; then retention removes old blobs with Delete Blob.
    Two runs: a snapshot-interval snapshot rewrites the current index's
    snapshot, which a validation running meanwhile would race (the same
    with every backend; see the report of issue 19)."""
    db, prefix = tmp_path / "app.db", "ret"
    conf = write_conf(tmp_path / "ls.conf", db, az, prefix, validation_interval="500ms")
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log1", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 13, "--count", 150, "--sleep", 0.01]]))
    wait_for(lambda: rep.text().count("validation ok") >= 2, timeout=30, what="two validations")
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text() and "validation:" not in rep.text(), rep.text()

    conf = write_conf(tmp_path / "ls.conf", db, az, prefix,
                      db_extra="min-checkpoint-page-count = 20", snapshot_interval="1s",
                      retention="1s", retention_check_interval="500ms")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log2", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 14, "--count", 200, "--sleep", 0.01]]))
    wait_for(lambda: "retention: removed" in rep.text(), timeout=30, what="a retention pass")
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    snaps = sorted(k for k in az.list_blobs(prefix + "/") if k.endswith(".snapshot.lz4"))
    assert snaps and not snaps[0].endswith("/00000000.snapshot.lz4"), snaps
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_wrong_key(litestream_bin, run, tmp_path, az):
    db = tmp_path / "app.db"
    make_db(db)
    wrong = base64.b64encode(b"not the key of this account at all").decode()
    conf = write_conf(tmp_path / "ls.conf", db, az, "p", account_key=None)
    env = ls_env(LITESTREAM_AZURE_ACCOUNT_KEY=wrong)
    r = run("restore", "-config", conf, "-o", tmp_path / "out.db", db, env=env)
    assert r.returncode != 0
    # Azure says AuthenticationFailed, Azurite AuthorizationFailure.
    assert re.search(r"403 (AuthenticationFailed|AuthorizationFailure)", r.stderr), r.stderr
    assert "check account-name and account-key (or LITESTREAM_AZURE_ACCOUNT_KEY)" in r.stderr
    assert wrong not in r.stderr
    # The right key from the environment works (0.3.13 reads it there too).
    r = run("generations", "-config", conf, db, env=ls_env(LITESTREAM_AZURE_ACCOUNT_KEY=az.key))
    assert r.returncode == 0, r.stderr


def test_missing_container_and_no_key(litestream_bin, run, tmp_path, az):
    db = tmp_path / "app.db"
    make_db(db)
    conf = write_conf(tmp_path / "ls.conf", db, az, "p", url="abs://devstoreaccount1@nope/p")
    r = run("generations", "-config", conf, db, env=ls_env())
    assert r.returncode != 0
    assert "ContainerNotFound" in r.stderr, r.stderr
    assert "container nope does not exist: create it" in r.stderr, r.stderr
    conf = write_conf(tmp_path / "ls2.conf", db, az, "p", account_key=None)
    r = run("generations", "-config", conf, db, env=ls_env())
    assert r.returncode != 0
    assert "no account key: set account-key or LITESTREAM_AZURE_ACCOUNT_KEY" in r.stderr, r.stderr


def account_sas(az, permissions="rwdlac", minutes=30):
    """An account SAS (version 2021-08-06) for the blob service, signed as
    Azure documents it; what `az storage account generate-sas` gives."""
    expiry = (datetime.now(timezone.utc) + timedelta(minutes=minutes)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    fields = [az.account, permissions, "b", "sco", "", expiry, "", "", "2021-08-06", ""]
    sts = "\n".join(fields) + "\n"
    sig = base64.b64encode(hmac.new(base64.b64decode(az.key), sts.encode(),
                                    hashlib.sha256).digest()).decode()
    return urllib.parse.urlencode({"sv": "2021-08-06", "ss": "b", "srt": "sco",
                                   "sp": permissions, "se": expiry, "sig": sig})


def test_sas_token(litestream_bin, run, tmp_path, az):
    db, prefix = tmp_path / "app.db", "sas"
    conf = write_conf(tmp_path / "ls.conf", db, az, prefix, account_key=None,
                      sas_token=account_sas(az))
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 11, "--count", 100]]))
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    assert any("/wal/" in k for k in az.list_blobs(prefix + "/"))
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    # A token without write permission: a clear refusal, with a hint.
    conf = write_conf(tmp_path / "ro.conf", db, az, prefix + "2", account_key=None,
                      sas_token=account_sas(az, permissions="rl"))
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log-ro", env=ls_env())
    wait_for(lambda: "ERROR" in rep.text(), timeout=30, what="the refusal")
    rep.stop()
    assert "AuthorizationPermissionMismatch" in rep.text(), rep.text()
    assert "the sas-token may not do this" in rep.text(), rep.text()


FAULTS = {
    "server-busy": [{"match": r"^PUT .*\.wal\.lz4", "action": "status", "status": 503,
                     "code": "ServerBusy", "skip": 1, "count": 3}],
    "reset": [{"match": "^PUT ", "action": "reset", "skip": 1, "count": 2}],
}


class _Upstream:
    def __init__(self, az):
        self.endpoint = f"http://127.0.0.1:{az.port}"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault(litestream_bin, run, tmp_path, az, fault):
    if MITMDUMP is None:
        pytest.skip("mitmdump is not installed (Debian package mitmproxy)")
    d = tmp_path / "proxy"
    d.mkdir()
    proxy = Proxy(_Upstream(az), str(d))
    try:
        db, prefix = tmp_path / "app.db", f"fault-{fault}"
        conf = write_conf(tmp_path / "ls.conf", db, az, prefix,
                          endpoint=f"{proxy.endpoint}/{az.account}")
        make_db(db)
        proxy.set(FAULTS[fault])
        rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log",
                         env=ls_env(LITESTREAM_S3_STALL_TIMEOUT="1s"))
        wait_writers(start_writers(db, [["--seed", 9, "--count", 150, "--sleep", 0.004]]))
        rule = FAULTS[fault][0]
        wait_for(lambda: sum(a["action"] == rule["action"] for a in proxy.actions()) >=
                 rule["count"], timeout=30, what="every fault injected")
        sock = tmp_path / "ls.sock"
        wait_for(lambda: run("status", "-socket", sock, "-max-lag", "1s").returncode == 0,
                 interval=0.2,
                 timeout=30, what="the replica to catch up")
        # Everything shipped (status's -max-lag 1s allows a last segment
        # still in its retry), then idle: not one request (no polling, no
        # keep-alive chatter).
        st, body, _ = ctl_call(str(sock), "POST", "/v1/dbs/app/sync?wait=1&timeout=30s", body=b"", timeout=40)
        assert st == 200, body
        time.sleep(0.5)
        n = len(proxy.actions())
        time.sleep(2.5)
        assert len(proxy.actions()) == n, proxy.actions()[n:]
        assert rep.stop() == 0, rep.text()
        log = rep.text()
        assert "retrying in" in log, log
        if fault == "server-busy":
            assert "503 ServerBusy" in log, log
        proxy.set([])
        restore(run, conf, db, tmp_path / "restored.db")
    finally:
        proxy.stop()
    assert_same(db, tmp_path / "restored.db")
    names = [k.rsplit("/", 1)[1] for k in az.list_blobs(prefix + "/") if "/wal/" in k]
    assert names and len(names) == len(set(names))


def test_azurite_restarted_under_writes(litestream_bin, run, tmp_path, az):
    """Azurite killed under writes and started again a few seconds later
    (same port, same data): failures are logged, nothing is lost, and the
    replica catches up and restores."""
    db, prefix = tmp_path / "app.db", "outage"
    conf = write_conf(tmp_path / "ls.conf", db, az, prefix)
    sock = tmp_path / "ls.sock"
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log",
                     env=ls_env(LITESTREAM_S3_STALL_TIMEOUT="1s"))
    writer = start_writers(db, [["--seed", 12, "--seconds", 9, "--sleep", 0.01]])
    wait_for(lambda: "snapshot written" in rep.text(), timeout=30, what="replication to start")
    az.server.stop()
    try:
        wait_for(lambda: "Connection refused" in rep.text() or "connect" in rep.text().lower(),
                 timeout=30, what="the outage to be noticed")
        time.sleep(3)
        assert rep.proc.poll() is None, "the daemon exited during the outage"
    finally:
        az.server.start()
    wait_writers(writer)
    wait_for(lambda: run("status", "-socket", sock, "-max-lag", "2s").returncode == 0,
             timeout=40, what="the replica to catch up")
    assert replica_status(run, sock)["last_error"] is None
    assert rep.stop() == 0, rep.text()
    restore(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    names = [k.rsplit("/", 1)[1] for k in az.list_blobs(prefix + "/") if "/wal/" in k]
    assert names and len(names) == len(set(names))
