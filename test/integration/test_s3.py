"""litestream against a real S3 server: Ceph's RADOS Gateway on loopback
(the s3_server fixture), real SQLite databases written by real processes,
the real binary, and a real S3 client (awscli) to check what was stored.

Faults come from mitmproxy standing between the program and the server
(s3proxy_addon.py): 503 SlowDown bursts, connections reset before or after
the server stored an upload, answers delayed beyond the program's stall
timeout, and AWS's answer to a wrong region (the test server accepts any
region, AWS does not). After each, the restore must equal the source and
the segments must tile each WAL index exactly: no range shipped twice under
two names, none missing.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from ctlutil import call as ctl_call
from lsutil import Replicator, assert_same, start_writers, wait_for, wait_writers
from test_faults import small_fs  # noqa: F401 (a fixture)
from test_replicate import make_db

HERE = os.path.dirname(os.path.abspath(__file__))
ADDON = os.path.join(HERE, "s3proxy_addon.py")
MITMDUMP = shutil.which("mitmdump")
LZ4 = shutil.which("lz4")
PART = 5 * 1024 * 1024


# ---- helpers -----------------------------------------------------------------

def new_prefix():
    return f"t-{uuid.uuid4().hex[:10]}"


def ls_env(**extra):
    """The environment for litestream: none of the caller's AWS or
    LITESTREAM settings, no shared credentials file."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("LITESTREAM_")}
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/credentials"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def creds_env(s3, **extra):
    return ls_env(LITESTREAM_ACCESS_KEY_ID=s3.access_key,
                  LITESTREAM_SECRET_ACCESS_KEY=s3.secret_key, **extra)


def write_conf(path, db, s3, prefix, endpoint=None, db_extra="", **replica):
    keys = {
        "bucket": s3.bucket,
        "path": prefix,
        "endpoint": endpoint or s3.endpoint,
        "region": s3.region,
        "force-path-style": "true",
        "access-key-id": s3.access_key,
        "secret-access-key": s3.secret_key,
        "sync-interval": "200ms",
    }
    keys.update({k.replace("_", "-"): v for k, v in replica.items()})
    lines = "\n".join(f"{k} = {v}" for k, v in keys.items())
    path.write_text(f"""[litestream]
log-level = info
socket = {db.parent / "ls.sock"}

[db app]
path = {db}
monitor-interval = 100ms
{db_extra}

[replica s3]
db = app
type = s3
{lines}
""")
    return path


def list_objects(s3, prefix):
    """{key: (size, etag, last_modified)} of everything under prefix/."""
    r = s3.aws("s3api", "list-objects-v2", "--bucket", s3.bucket, "--prefix", prefix + "/")
    out = json.loads(r.stdout) if r.stdout.strip() else {}
    return {o["Key"]: (o["Size"], o["ETag"], o["LastModified"]) for o in out.get("Contents", [])}


def download(s3, prefix, dest, bucket=None):
    s3.aws("s3", "cp", "--recursive", "--only-show-errors",
           f"s3://{bucket or s3.bucket}/{prefix}", str(dest))
    return dest


def lz4_decompress(path):
    r = subprocess.run([LZ4, "-d", "-c", str(path)], capture_output=True, timeout=60)
    assert r.returncode == 0, f"lz4 -d {path}: {r.stderr.decode(errors='replace')}"
    return r.stdout


def segments_of(root):
    """{(generation, index): [(offset, path), ...]} for the offset-named
    segments under a downloaded replica, by offset."""
    out = {}
    gens = root / "generations"
    for gen in sorted(os.listdir(gens)) if gens.exists() else []:
        wal = gens / gen / "wal"
        for name in sorted(os.listdir(wal)) if wal.exists() else []:
            assert name.endswith(".wal.lz4") and "_" in name, f"unexpected object {gen}/wal/{name}"
            index, offset = name[:-len(".wal.lz4")].split("_")
            out.setdefault((gen, int(index, 16)), []).append((int(offset, 16), wal / name))
    for v in out.values():
        v.sort()
    return out


def check_tiling(root):
    """Each WAL index's segments follow one another exactly: the next starts
    where the previous ends (decompressed), so no range was shipped twice
    under another name and none is missing. Returns the segment count."""
    n = 0
    for (gen, index), segs in segments_of(root).items():
        expect = 0
        for offset, path in segs:
            assert offset == expect, (f"{gen} index {index:08x}: segment at {offset} "
                                      f"where {expect} was expected ({path.name})")
            expect += len(lz4_decompress(path))
            n += 1
    return n


def shadow_dir(db):
    return db.parent / f".{db.name}-litestream"


def restore_conf(run, conf, db, out, env=None):
    r = run("restore", "-config", conf, "-o", out, db, env=env or ls_env())
    assert r.returncode == 0, f"restore failed: {r.stderr}"
    return r


def restore_url(run, s3, prefix, out):
    r = run("restore", "-o", out, s3.replica_url(prefix), env=creds_env(s3))
    assert r.returncode == 0, f"restore failed: {r.stderr}"
    return r


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proxy:
    """mitmdump in reverse-proxy mode in front of the S3 server, running
    s3proxy_addon.py; set() replaces its fault plan, pause() and resume()
    take it away and bring it back on the same port (an outage)."""

    def __init__(self, s3, directory):
        self.s3 = s3
        self.dir = directory
        self.plan = os.path.join(directory, "plan.json")
        self.log = os.path.join(directory, "proxy.log")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.set([])
        self.out = open(os.path.join(directory, "mitmdump.out"), "ab")
        self.proc = None
        self.resume()

    def resume(self):
        env = dict(os.environ, S3PROXY_PLAN=self.plan, S3PROXY_LOG=self.log)
        self.proc = subprocess.Popen(
            [MITMDUMP, "-q", "--mode", f"reverse:{self.s3.endpoint}", "--listen-host",
             "127.0.0.1", "--listen-port", str(self.port), "--set", "keep_host_header=true",
             "--set", "connection_strategy=lazy", "-s", ADDON],
            stdout=self.out, stderr=self.out, env=env)

        def up():
            assert self.proc.poll() is None, f"mitmdump exited: {self.output()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, timeout=30, what="mitmdump to listen")

    def output(self):
        with open(os.path.join(self.dir, "mitmdump.out"), errors="replace") as f:
            return f.read()

    def set(self, rules, region=None):
        tmp = self.plan + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"rules": rules, "region": region}, f)
        os.replace(tmp, self.plan)
        if os.path.exists(self.log):
            os.unlink(self.log)

    def actions(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def pause(self):
        """Stops the proxy: connections to its port are refused."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self.pause()
        self.out.close()


@pytest.fixture(scope="module")
def proxy(s3_server, tmp_path_factory):
    if MITMDUMP is None:
        pytest.skip("mitmdump is not installed (Debian package mitmproxy)")
    p = Proxy(s3_server, str(tmp_path_factory.mktemp("proxy")))
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def need_lz4():
    if LZ4 is None:
        pytest.skip("the lz4 command is not installed (Debian package lz4)")


def big_db(db, mib):
    """A database of about mib MiB of incompressible rows, written before
    litestream starts (so its first snapshot is that big)."""
    make_db(db)
    wait_writers(start_writers(db, [["--seed", 40, "--count", 1, "--big-every", 1,
                                     "--big-bytes", mib << 20]]))


# ---- replication and restore ---------------------------------------------------

def test_replicate_under_writes_and_restore(litestream_bin, run, tmp_path, s3_server):
    """URL mode, credentials from LITESTREAM_*: two writers, SIGTERM, restore.
    Listings come in pages of 2 objects, so every listing walks continuation
    tokens."""
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    rep = Replicator(litestream_bin, [db, s3_server.replica_url(prefix)], tmp_path / "log",
                     env=creds_env(s3_server, LITESTREAM_S3_MAX_KEYS=2))
    # Long enough to span several 1 s sync ticks (one PUT per tick).
    wait_writers(start_writers(db, [["--seed", 1, "--count", 500, "--big-every", 250,
                                     "--big-bytes", 1 << 20, "--sleep", 0.008],
                                    ["--seed", 2, "--count", 500, "--sleep", 0.008]]))
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "ERROR" not in log, log
    assert s3_server.secret_key not in log
    assert f"replicating to s3://{s3_server.bucket}/{prefix}" in log
    r = run("restore", "-o", tmp_path / "restored.db", s3_server.replica_url(prefix),
            env=creds_env(s3_server, LITESTREAM_S3_MAX_KEYS=2))
    assert r.returncode == 0, r.stderr
    assert_same(db, tmp_path / "restored.db")
    assert len(list_objects(s3_server, prefix)) > 4  # so the pages were many


def test_staged_uploads_do_not_pile_up(litestream_bin, tmp_path, s3_server):
    db, prefix = tmp_path / "app.db", new_prefix()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix)
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 14, "--count", 100, "--sleep", 0.005]]))
    assert rep.stop() == 0, rep.text()
    stage = shadow_dir(db) / "tmp"
    left = [p.name for p in stage.iterdir()] if stage.exists() else []
    assert left == [], f"{len(left)} staged files left in {stage}"


def test_restart_resumes_without_reuploading(litestream_bin, run, tmp_path, s3_server):
    db, prefix = tmp_path / "app.db", new_prefix()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix)
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log1", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 3, "--count", 150]]))
    assert rep.stop() == 0, rep.text()
    before = list_objects(s3_server, prefix)
    assert any(".snapshot.lz4" in k for k in before) and any(".wal.lz4" in k for k in before)

    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log2", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 4, "--count", 150]]))
    assert rep.stop() == 0, rep.text()
    after = list_objects(s3_server, prefix)
    # Nothing shipped before was written again, and the same generation went on.
    for key, meta in before.items():
        assert after.get(key) == meta, f"{key} rewritten or removed"
    assert len(after) > len(before)
    log = rep.text()
    assert "resuming at" in log and "new generation" not in log, log
    assert "ERROR" not in log, log
    restore_conf(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_objects_read_back_with_awscli(litestream_bin, run, tmp_path, s3_server):
    """What the program stored, read with another S3 client and the lz4
    command, is byte for byte the shadow WAL's ranges and the database."""
    db, prefix = tmp_path / "app.db", new_prefix()
    # No checkpoint anywhere, so the database file stays what was snapshotted
    # and every shadow WAL index stays on disk.
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix,
                      db_extra="checkpoint-interval = 1h\nmin-checkpoint-page-count = 100000\n"
                               "max-checkpoint-page-count = 200000")
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 5, "--count", 300, "--no-autocheckpoint"]]))
    assert rep.stop() == 0, rep.text()

    got = download(s3_server, prefix, tmp_path / "s3")
    gen = (shadow_dir(db) / "generation").read_text().strip()
    snapshots = list((got / "generations" / gen / "snapshots").iterdir())
    assert [p.name for p in snapshots] == ["00000000.snapshot.lz4"]
    assert lz4_decompress(snapshots[0]) == db.read_bytes()

    compared = 0
    for (g, index), segs in segments_of(got).items():
        assert g == gen
        shadow = (shadow_dir(db) / "generations" / gen / "wal" / f"{index:08x}.wal").read_bytes()
        for offset, path in segs:
            data = lz4_decompress(path)
            assert len(data) > 0
            assert data == shadow[offset:offset + len(data)], f"{path.name} differs from the shadow wal"
            compared += 1
    assert compared >= 1
    assert check_tiling(got) == compared


def test_multipart_snapshot(litestream_bin, run, tmp_path, s3_server):
    """A snapshot above part-size goes up in parts, is verified by HEAD, and restores."""
    db, prefix = tmp_path / "app.db", new_prefix()
    big_db(db, 11)
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, part_size="5MB")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 6, "--count", 50]]))
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()

    snaps = {k: v for k, v in list_objects(s3_server, prefix).items() if k.endswith(".snapshot.lz4")}
    assert len(snaps) == 1
    key, (size, etag, _) = next(iter(snaps.items()))
    parts = (size + PART - 1) // PART
    assert size > PART and parts >= 3
    assert etag.strip('"').endswith(f"-{parts}"), etag
    r = s3_server.aws("s3api", "list-multipart-uploads", "--bucket", s3_server.bucket,
                      "--prefix", prefix + "/")
    assert not (json.loads(r.stdout).get("Uploads") if r.stdout.strip() else None)
    restore_conf(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_virtual_host_style_and_credentials_file(litestream_bin, run, tmp_path, s3_server):
    """BUCKET.s3.localhost:PORT addressing (rgw's DNS name; curl resolves
    *.localhost itself), credentials from a profile of a shared
    credentials file."""
    db, prefix = tmp_path / "app.db", new_prefix()
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"
                     f"[backup]\naws_access_key_id = {s3_server.access_key}\n"
                     f"aws_secret_access_key = {s3_server.secret_key}\n")
    env = ls_env(AWS_SHARED_CREDENTIALS_FILE=creds, AWS_PROFILE="backup")
    url = (f"s3://{s3_server.bucket}/{prefix}?endpoint=http://s3.localhost:{s3_server.port}"
           f"&force-path-style=false")
    make_db(db)
    rep = Replicator(litestream_bin, [db, url], tmp_path / "log", env=env)
    wait_writers(start_writers(db, [["--seed", 12, "--count", 100]]))
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    assert any(k.endswith(".snapshot.lz4") for k in list_objects(s3_server, prefix))
    r = run("restore", "-o", tmp_path / "restored.db", url, env=env)
    assert r.returncode == 0, r.stderr
    assert_same(db, tmp_path / "restored.db")


def test_gcs_url_is_s3_with_hmac_keys(litestream_bin, run, tmp_path, s3_server):
    """gcs://BUCKET/PATH is an S3 replica on Google Cloud Storage's XML API
    (here radosgw through ?endpoint=, as storage.googleapis.com is out of
    reach) that takes HMAC keys only: without them the start is refused,
    naming what it needs. The layout is S3's: s3:// restores it."""
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    url = f"gcs://{s3_server.bucket}/{prefix}?endpoint={s3_server.endpoint}"
    r = run("replicate", "-once", db, url, env=ls_env())
    assert r.returncode == 1 and "Google Cloud Storage needs HMAC keys" in r.stderr, r.stderr
    rep = Replicator(litestream_bin, [db, url], tmp_path / "log", env=creds_env(s3_server))
    wait_writers(start_writers(db, [["--seed", 4, "--count", 100, "--sleep", 0.005]]))
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    r = run("restore", "-o", tmp_path / "restored.db", s3_server.replica_url(prefix),
            env=creds_env(s3_server))
    assert r.returncode == 0, r.stderr
    assert_same(db, tmp_path / "restored.db")


def test_retention_deletes_old_objects(litestream_bin, run, tmp_path, s3_server):
    """Retention removes old snapshots and segments with DeleteObjects; the
    replica still restores."""
    db, prefix = tmp_path / "app.db", new_prefix()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix,
                      db_extra="min-checkpoint-page-count = 20",
                      snapshot_interval="1s", retention="1s", retention_check_interval="500ms")
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 13, "--count", 400, "--sleep", 0.01]]))
    wait_for(lambda: "retention: removed" in rep.text(), timeout=30, what="a retention pass")
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    keys = list_objects(s3_server, prefix)
    snaps = sorted(k for k in keys if k.endswith(".snapshot.lz4"))
    assert snaps and not snaps[0].endswith("/00000000.snapshot.lz4"), snaps
    restore_conf(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def test_rotated_credentials_picked_up_without_restart(litestream_bin, run, tmp_path, s3_server):
    """Credentials from the shared credentials file that the server rejects:
    the daemon reports it and keeps the data; once the file holds working
    ones (a rotated key, a renewed session), it reads them again by itself
    and catches up."""
    db, prefix = tmp_path / "app.db", new_prefix()
    creds = tmp_path / "credentials"

    def write_creds(secret):
        tmp = tmp_path / "credentials.tmp"
        tmp.write_text(f"[default]\naws_access_key_id = {s3_server.access_key}\n"
                       f"aws_secret_access_key = {secret}\n")
        os.replace(tmp, creds)
    write_creds("an-old-secret")
    make_db(db)
    rep = Replicator(litestream_bin, [db, s3_server.replica_url(prefix)], tmp_path / "log",
                     env=ls_env(AWS_SHARED_CREDENTIALS_FILE=creds))
    writer = start_writers(db, [["--seed", 18, "--count", 300, "--sleep", 0.01]])
    wait_for(lambda: "403 SignatureDoesNotMatch" in rep.text(), timeout=30,
             what="the rejected credentials to be reported")
    write_creds(s3_server.secret_key)
    wait_writers(writer)
    wait_for(lambda: "replica healthy again" in rep.text(), timeout=30,
             what="the replica to recover")
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert f"credentials reloaded from {creds} [default]" in log, log
    assert s3_server.secret_key not in log and "an-old-secret" not in log
    restore_url(run, s3_server, prefix, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


# ---- misconfiguration: reported, nothing lost, fixed by a restart ----------------

MISTAKES = {
    "wrong-secret": ({"secret_access_key": "not-the-secret"},
                     ["403 SignatureDoesNotMatch", "check the access key and secret"]),
    "wrong-region": ({"region": "eu-west-3"},
                     ["400 AuthorizationHeaderMalformed",
                      "is in us-east-1, not eu-west-3; set region = us-east-1"]),
    "missing-bucket": ({"bucket": "litestream-no-such-bucket"},
                       ["404 NoSuchBucket", "bucket litestream-no-such-bucket does not exist"]),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_misconfiguration_then_fixed(litestream_bin, run, tmp_path, s3_server, proxy, mistake):
    bad, expected = MISTAKES[mistake]
    db, prefix = tmp_path / "app.db", new_prefix()
    # The region check is AWS's, played by the proxy.
    proxy.set([], region=s3_server.region)
    endpoint = proxy.endpoint if mistake == "wrong-region" else None
    bad_conf = write_conf(tmp_path / "bad.conf", db, s3_server, prefix, endpoint=endpoint, **bad)
    good_conf = write_conf(tmp_path / "good.conf", db, s3_server, prefix, endpoint=endpoint)
    make_db(db)

    rep = Replicator(litestream_bin, ["-config", bad_conf], tmp_path / "log1", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 7, "--count", 200]]))
    wait_for(lambda: all(e in rep.text() for e in expected), timeout=30,
             what=f"{expected} in the log")
    assert rep.proc.poll() is None, "the daemon exited"
    r = run("restore", "-config", bad_conf, "-o", tmp_path / "nope.db", db, env=ls_env())
    assert r.returncode != 0
    for e in expected:
        assert e in r.stderr, r.stderr
    assert not (tmp_path / "nope.db").exists()
    rep.stop()
    log = rep.text()
    assert s3_server.secret_key not in log and "not-the-secret" not in log
    # What could not be shipped waits in the shadow WAL.
    gen = (shadow_dir(db) / "generation").read_text().strip()
    assert any(p.stat().st_size > 0
               for p in (shadow_dir(db) / "generations" / gen / "wal").iterdir())

    rep = Replicator(litestream_bin, ["-config", good_conf], tmp_path / "log2", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 8, "--count", 50]]))
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    restore_conf(run, good_conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    proxy.set([])


# ---- faults between the program and S3 ------------------------------------------

FAULTS = {
    # A burst longer than the backend's own attempts: the replica retries too.
    "slowdown-burst": [{"match": "^PUT ", "action": "status", "status": 503, "code": "SlowDown",
                        "skip": 2, "count": 7}],
    "reset-before-upload": [{"match": "^PUT ", "action": "reset", "skip": 1, "count": 3}],
    "reset-after-upload": [{"match": "^PUT ", "action": "reset_after", "skip": 1, "count": 3}],
    # Beyond the stall timeout (1s here) and curl's few seconds of speed
    # averaging: the attempt is abandoned and sent again.
    "delay-beyond-timeout": [{"match": "^PUT ", "action": "delay", "delay_ms": 8000, "skip": 1,
                              "count": 1}],
    # The start-up LIST (finding the replica's position) cut short twice.
    "truncated-list": [{"match": r"^GET .*list-type=2", "action": "truncate", "count": 2}],
    # ... or answered with half a document that HTTP sees as whole.
    "short-list": [{"match": r"^GET .*list-type=2", "action": "short", "count": 2}],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault(litestream_bin, run, tmp_path, s3_server, proxy, fault):
    db, prefix = tmp_path / "app.db", new_prefix()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, endpoint=proxy.endpoint)
    make_db(db)
    proxy.set(FAULTS[fault])
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log",
                     env=ls_env(LITESTREAM_S3_STALL_TIMEOUT="1s"))
    wait_writers(start_writers(db, [["--seed", 9, "--count", 300],
                                    ["--seed", 10, "--count", 300]]))
    action = FAULTS[fault][0]["action"]
    wait_for(lambda: sum(a["action"] == action for a in proxy.actions()) >=
             FAULTS[fault][0]["count"], timeout=30, what="every fault injected")
    assert rep.stop() == 0, rep.text()
    proxy.set([])
    log = rep.text()
    assert "retrying in" in log, log
    if fault == "slowdown-burst":
        assert "gave up after 5 attempts" in log and "replica healthy again" in log, log
    if fault in ("slowdown-burst", "truncated-list", "short-list"):
        # Every injected fault is one failed attempt in the log: a retry
        # (WARN), or the last attempt given up (a failure of the replica:
        # the first of a run is an ERROR line, the others within a minute
        # are counted in the "healthy again after N failures" line).
        lines = log.splitlines()
        retried = [ln for ln in lines if " WARN " in ln and "retrying in" in ln]
        gave_up = sum(int(m.group(1)) for m in
                      re.finditer(r"replica healthy again after (\d+) failures? in", log))
        assert gave_up >= len([ln for ln in lines if " ERROR " in ln and "gave up after" in ln])
        assert len(retried) + gave_up == FAULTS[fault][0]["count"], "\n".join(retried) + f"\n+{gave_up}"
    if fault == "delay-beyond-timeout":
        assert "Operation too slow" in log or "timed out" in log, log

    restore_url(run, s3_server, prefix, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    # Each segment once: one name per (index, offset), and the ranges tile.
    names = [k.rsplit("/", 1)[1] for k in list_objects(s3_server, prefix) if "/wal/" in k]
    assert len(names) == len(set(names)) and names
    assert check_tiling(download(s3_server, prefix, tmp_path / "s3")) == len(names)


def test_multipart_faults(litestream_bin, run, tmp_path, s3_server, proxy):
    """A part refused twice, and the completion's answer lost after the
    server completed the upload: retried, verified by HEAD, restorable."""
    db, prefix = tmp_path / "app.db", new_prefix()
    big_db(db, 11)
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, endpoint=proxy.endpoint,
                      part_size="5MB")
    proxy.set([{"match": r"^PUT .*partNumber=2&", "action": "status", "status": 503,
                "code": "SlowDown", "count": 2},
               {"match": r"^POST .*\?uploadId=", "action": "reset_after", "count": 1}])
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 11, "--count", 50]]))
    wait_for(lambda: "snapshot written" in rep.text(), timeout=30, what="the snapshot")
    assert rep.stop() == 0, rep.text()
    acted = [a["action"] for a in proxy.actions()]
    proxy.set([])
    assert acted.count("status") == 2 and acted.count("reset_after") == 1, acted
    assert "ERROR" not in rep.text(), rep.text()
    snaps = [v for k, v in list_objects(s3_server, prefix).items() if k.endswith(".snapshot.lz4")]
    assert len(snaps) == 1 and "-" in snaps[0][1]
    r = s3_server.aws("s3api", "list-multipart-uploads", "--bucket", s3_server.bucket,
                      "--prefix", prefix + "/")
    assert not (json.loads(r.stdout).get("Uploads") if r.stdout.strip() else None)
    restore_conf(run, conf, db, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")


def replica_status(run, sock):
    """The one replica of the one database, as `litestream status -json` shows it."""
    r = run("status", "-json", "-socket", sock)
    assert r.returncode in (0, 1), r.stderr
    (db,) = json.loads(r.stdout)["dbs"]
    (rep,) = db["replicas"]
    return rep


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))


# Each half of the one-minute outage; 10 s under the sanitizers, where the
# gcc half already ran the full minute and the error paths are what counts.
OUTAGE_S = 10 if os.environ.get("LITESTREAM_SANITIZERS") else 30
WAL_CAP = 2000  # max-checkpoint-page-count of the outage test


def test_one_minute_outage(litestream_bin, run, tmp_path, s3_server, proxy):
    """The S3 endpoint gone for a minute under steady writes: 30 s with its
    port closed (connection refused), then 30 s answering every request with
    503 SlowDown. The failures are counted one for one and logged once; the
    retries stay on a capped schedule (no request storm); sync?wait=1 answers
    504 at its timeout; the database's WAL stays within the checkpoint
    settings while the shadow WAL holds the backlog; memory stays flat. Once
    the endpoint is back everything ships in order, and the replica restores
    to the source with every segment stored once."""
    db, prefix = tmp_path / "app.db", new_prefix()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, endpoint=proxy.endpoint,
                      db_extra=f"min-checkpoint-page-count = 200\nmax-checkpoint-page-count = {WAL_CAP}")
    sock = tmp_path / "ls.sock"
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log",
                     env=ls_env(LITESTREAM_S3_STALL_TIMEOUT="1s"))
    # Small commits every 20 ms, and 1 MiB every 100th: about 30 MB of WAL in the minute.
    writer = start_writers(db, [["--seed", 16, "--seconds", 2 * OUTAGE_S + 8, "--sleep", 0.02,
                                 "--big-every", 100, "--big-bytes", 1 << 20]])
    wait_for(lambda: "snapshot written" in rep.text(), timeout=30, what="replication to start")
    wal = db.with_name(db.name + "-wal")
    wal_max = 0

    def hold(seconds):
        nonlocal wal_max
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            assert rep.proc.poll() is None, "the daemon exited during the outage:\n" + rep.text()
            wal_max = max(wal_max, wal.stat().st_size if wal.exists() else 0)
            time.sleep(0.25)

    proxy.pause()
    rss0 = vm_rss_kib(rep.proc.pid)
    try:
        wait_for(lambda: "ERROR" in rep.text(), timeout=OUTAGE_S, what="the outage to be reported")
        during = replica_status(run, sock)
        assert during["error_count"] >= 1 and during["last_error"], during
        hold(OUTAGE_S - 3)
        proxy.set([{"match": ".", "action": "status", "status": 503, "code": "SlowDown"}])
        proxy.resume()
        began = time.monotonic()
        t0 = time.monotonic()
        st, body, _ = ctl_call(str(sock), "POST", "/v1/dbs/app/sync?wait=1&timeout=3s", body=b"",
                               timeout=20)
        waited = time.monotonic() - t0
        assert st == 504 and 2.5 <= waited < 8, (st, body, waited)
        hold(OUTAGE_S - (time.monotonic() - began))
        refused = proxy.actions()
        rss1 = vm_rss_kib(rep.proc.pid)
    finally:
        proxy.set([])
    back = time.monotonic()
    wait_for(lambda: "replica healthy again" in rep.text(), timeout=40,
             what="the replica to recover")
    recovered_s = time.monotonic() - back
    wait_writers(writer)
    wait_for(lambda: run("status", "-socket", sock, "-max-lag", "2s").returncode == 0,
             timeout=60, what="the replica to catch up")

    # The capped schedule: 5 attempts per operation (backoff 250 ms .. 4 s),
    # then the replica's own backoff (up to 10 s): about 20 a minute, never a storm.
    answered = [a for a in refused if a["action"] == "status"]
    # At most about one a second (60 a minute), and a few more in a short run.
    assert 1 <= len(answered) <= OUTAGE_S + 5, (len(answered), refused[:20])
    # The retry that ends the outage comes within the replica's capped backoff.
    assert recovered_s < 20, recovered_s
    # Checkpoints went on (the shadow WAL holds the backlog): the WAL never
    # grew past the cap plus one big transaction and some slack.
    assert wal_max <= (WAL_CAP + 600) * 4096, wal_max
    if not os.environ.get("LITESTREAM_SANITIZERS"):  # ASan's quarantine grows on its own
        assert rss1 - rss0 < 8 * 1024, (rss0, rss1)

    after = replica_status(run, sock)
    logged = [ln for ln in rep.text().splitlines() if " ERROR " in ln]
    # Every failure counted; within the minute only the first one logged (the
    # rest wait for the minute), and the recovery line says how many.
    assert after["error_count"] >= 2 and 1 <= len(logged) <= 2, (after, logged)
    assert "Connection refused" in logged[0] or "connect" in logged[0].lower(), logged
    healthy = [ln for ln in rep.text().splitlines() if "replica healthy again" in ln][0]
    assert f"after {after['error_count']} failures in" in healthy, (after, healthy)
    assert after["last_error"] is None, after
    assert rep.stop() == 0, rep.text()

    restore_url(run, s3_server, prefix, tmp_path / "restored.db")
    assert_same(db, tmp_path / "restored.db")
    names = [k.rsplit("/", 1)[1] for k in list_objects(s3_server, prefix) if "/wal/" in k]
    assert len(names) == len(set(names)) and names
    assert check_tiling(download(s3_server, prefix, tmp_path / "s3")) == len(names)


# ---- restore: large objects in ranges ---------------------------------------------

SNAPSHOT_GET = r"^GET .*\.snapshot\.lz4"
RANGE_FAULTS = {
    "none": [],
    "slowdown": [{"match": SNAPSHOT_GET, "action": "status", "status": 503, "code": "SlowDown",
                  "skip": 1, "count": 2}],
    "reset": [{"match": SNAPSHOT_GET, "action": "reset", "skip": 2, "count": 1}],
    "truncated": [{"match": SNAPSHOT_GET, "action": "truncate", "skip": 1, "count": 2}],
    "short": [{"match": SNAPSHOT_GET, "action": "short", "skip": 1, "count": 1}],
}


@pytest.fixture(scope="module")
def big_replica(litestream_bin, s3_server, tmp_path_factory):
    """An 11 MiB database of incompressible rows, replicated with part-size
    5MB: its snapshot object comes back in three ranges."""
    d = tmp_path_factory.mktemp("big")
    db, prefix = d / "app.db", new_prefix()
    big_db(db, 11)
    conf = write_conf(d / "ls.conf", db, s3_server, prefix, part_size="5MB")
    rep = Replicator(litestream_bin, ["-config", conf], d / "log", env=ls_env())
    wait_writers(start_writers(db, [["--seed", 17, "--count", 30]]))
    assert rep.stop() == 0, rep.text()
    return db, prefix


@pytest.mark.parametrize("fault", sorted(RANGE_FAULTS))
def test_large_snapshot_restores_in_ranges(run, tmp_path, s3_server, proxy, big_replica, fault):
    """Restore fetches a snapshot above part-size as part-size ranges, each
    asked for once when nothing fails, and decompresses it as they arrive;
    a range refused, reset or cut short is fetched again, and the result is
    the source either way."""
    db, prefix = big_replica
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, prefix, endpoint=proxy.endpoint,
                      part_size="5MB")
    (size,) = [v[0] for k, v in list_objects(s3_server, prefix).items()
               if k.endswith(".snapshot.lz4")]
    proxy.set(RANGE_FAULTS[fault])
    # No fault here needs the stall timeout (each ends its connection or
    # its message), and a short one retried a range mitmproxy was slow to
    # pass on a loaded machine: 5 s keeps "each range served once" true.
    r = run("restore", "-v", "-config", conf, "-o", tmp_path / "restored.db", db,
            env=ls_env(LITESTREAM_S3_STALL_TIMEOUT="5s"))
    assert r.returncode == 0, r.stderr
    # Decompressed as the ranges came in, not after the last one.
    assert "decompressing generations/" in r.stderr and "as it downloads" in r.stderr, r.stderr
    acts = [a for a in proxy.actions() if re.search(SNAPSHOT_GET, f"{a['method']} {a['path']}")]
    proxy.set([])
    assert_same(db, tmp_path / "restored.db")

    want = [f"bytes={o}-{min(o + PART, size) - 1}" for o in range(0, size, PART)]
    assert len(want) == 3
    served = sorted((a["range"] for a in acts if a["action"] == "pass"),
                    key=lambda v: int(v[6:].split("-")[0]))
    faulted = [a for a in acts if a["action"] != "pass"]
    # Each range served whole exactly once; the faulted attempts are extra.
    assert served == want, served
    count = RANGE_FAULTS[fault][0]["count"] if RANGE_FAULTS[fault] else 0
    assert len(faulted) == count, faulted
    assert all(a["range"] in want for a in faulted), faulted
    # (A reset before any answer, on a kept-alive connection, curl itself
    # sends again on a fresh one.)
    if fault in ("slowdown", "truncated", "short"):
        assert "retrying in" in r.stderr, r.stderr


def test_restore_to_a_full_disk(run, tmp_path, s3_server, big_replica, small_fs):
    """Downloading into a disk that fills up: the restore fails with the
    reason and the file, exits non-zero and leaves nothing behind."""
    db, prefix = big_replica
    filler = small_fs / "filler"
    st = os.statvfs(small_fs)
    filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - (2 << 20)))
    out = small_fs / "restored.db"
    r = run("restore", "-o", out, s3_server.replica_url(prefix), env=creds_env(s3_server))
    assert r.returncode != 0
    assert "No space left on device" in r.stderr and str(small_fs) in r.stderr, r.stderr
    assert [p.name for p in small_fs.iterdir()] == ["filler"]
    filler.unlink()
    restore_url(run, s3_server, prefix, out)
    assert_same(db, out)


def test_large_corrupt_snapshot_fails_while_downloading(run, tmp_path, s3_server, big_replica):
    """A byte changed in the middle of a snapshot that is decompressed as it
    downloads: the restore fails naming the object, and leaves nothing."""
    db, prefix = big_replica
    bad = new_prefix()
    s3_server.aws("s3", "cp", "--recursive", "--only-show-errors",
                  f"s3://{s3_server.bucket}/{prefix}", f"s3://{s3_server.bucket}/{bad}")
    (key,) = [k for k in list_objects(s3_server, bad) if k.endswith(".snapshot.lz4")]
    local = tmp_path / "snap.lz4"
    s3_server.aws("s3", "cp", "--only-show-errors", f"s3://{s3_server.bucket}/{key}", str(local))
    data = bytearray(local.read_bytes())
    data[len(data) // 2] ^= 0x5a
    local.write_bytes(bytes(data))
    s3_server.aws("s3", "cp", "--only-show-errors", str(local), f"s3://{s3_server.bucket}/{key}")
    out = tmp_path / "out" / "restored.db"
    out.parent.mkdir()
    conf = write_conf(tmp_path / "ls.conf", db, s3_server, bad, part_size="5MB")
    r = run("restore", "-v", "-config", conf, "-o", out, db, env=ls_env())
    assert r.returncode != 0
    assert "as it downloads" in r.stderr, r.stderr
    assert key.split("/", 1)[1] in r.stderr and "lz4" in r.stderr, r.stderr
    assert list(out.parent.iterdir()) == []
