"""Client-side encryption with age (age-recipients, age-identities), checked
with the `age` tool itself (Debian's age package): what we write it
decrypts to valid LZ4 frames equal to the shadow WAL and the database,
what it encrypts we restore, damage of every kind fails clearly with
nothing left at the output path, and a daemon holding only recipients
restarts after kill -9 without re-uploading or decrypting, on a file
replica and on S3 (radosgw)."""
import os
import shutil

import pytest

from agekeys import (AGE_MAGIC, LZ4_MAGIC, Key, age_decrypt, age_encrypt_in_place, lz4_decode,
                     need_tools, objects, stat_all)
from lsutil import Replicator, assert_same, start_writers, wait_for, wait_writers
from test_replicate import make_db


@pytest.fixture(autouse=True)
def tools():
    need_tools()


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return Key(d, "one"), Key(d, "two"), Key(d, "other")


def write_conf(path, db, replica_lines, db_extra=""):
    path.write_text(f"""[litestream]
socket = {db.parent / "ls.sock"}

[db app]
path = {db}
monitor-interval = 100ms
{db_extra}

[replica f]
db = app
{replica_lines}
""")
    return path


def file_conf(tmp_path, db, root, *, recipients=(), identities=(), extra="", db_extra=""):
    lines = [f"type = file", f"path = {root}"]
    if recipients:
        lines.append("age-recipients = " + " ".join(recipients))
    if identities:
        lines.append("age-identities = " + ", ".join(str(i) for i in identities))
    name = f"ls-{len(recipients)}-{len(identities)}-{abs(hash(extra)) % 1000}.conf"
    return write_conf(tmp_path / name, db, "\n".join(lines) + "\n" + extra, db_extra)


def shadow_dir(db):
    return db.parent / f".{db.name}-litestream"


def restore_fails(run, conf, db, out, *words):
    r = run("restore", "-config", conf, "-o", out, db)
    assert r.returncode != 0, "restore succeeded"
    for w in words:
        assert w in r.stderr, f"{w!r} not in {r.stderr!r}"
    assert not os.path.exists(out), f"{out} left behind"
    assert not os.path.exists(f"{out}.tmp"), f"{out}.tmp left behind"
    return r.stderr


def test_objects_decrypt_with_age_tool(litestream_bin, run, tmp_path, keys):
    """Two recipients: each identity alone opens every object, which is an
    LZ4 frame holding exactly the shadow WAL's range or the database."""
    one, two, other = keys
    db, root = tmp_path / "app.db", tmp_path / "replica"
    conf = file_conf(tmp_path, db, root, recipients=(one.recipient, two.recipient),
                     db_extra="checkpoint-interval = 1h\nmin-checkpoint-page-count = 100000\n"
                              "max-checkpoint-page-count = 200000")
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 5, "--count", 100, "--big-every", 50,
                                     "--big-bytes", 200000, "--no-autocheckpoint"]]))
    assert rep.stop() == 0, rep.text()
    gen = (shadow_dir(db) / "generation").read_text().strip()
    objs = objects(root)
    assert len(objs) >= 3
    segments = 0
    for path in objs:
        raw = open(path, "rb").read()
        assert raw.startswith(AGE_MAGIC) and LZ4_MAGIC not in raw[:200], f"{path} is not age"
        frames = [lz4_decode(age_decrypt(path, k)) for k in (one, two)]
        assert frames[0] == frames[1]
        name = os.path.basename(path)
        if name.endswith(".snapshot.lz4"):
            assert frames[0] == db.read_bytes()
            continue
        index, offset = (int(x, 16) for x in name[:-len(".wal.lz4")].split("_"))
        shadow = (shadow_dir(db) / "generations" / gen / "wal" / f"{index:08x}.wal").read_bytes()
        assert frames[0] == shadow[offset:offset + len(frames[0])], f"{name} differs"
        segments += 1
    assert segments >= 1
    # Either identity restores; the listings need none.
    for k in (one, two):
        restored = tmp_path / f"restored-{k.path.stem}.db"
        r = run("restore", "-config", file_conf(tmp_path, db, root, identities=(k.path,)),
                "-o", restored, db)
        assert r.returncode == 0, r.stderr
        assert_same(db, restored)
    plain = file_conf(tmp_path, db, root)
    for cmd in ("generations", "snapshots", "wal"):
        r = run(cmd, "-config", plain, db)
        assert r.returncode == 0 and gen in r.stdout, f"{cmd}: {r.stderr}"
    restore_fails(run, plain, db, tmp_path / "nokey.db", "encrypted with age",
                  "no age-identities", "generations/" + gen)
    restore_fails(run, file_conf(tmp_path, db, root, identities=(other.path,)), db,
                  tmp_path / "wrong.db", "encrypted with age", "none of the 1 age-identities")


def test_age_tool_encrypted_replica_restores(litestream_bin, run, tmp_path, keys):
    """A plaintext replica whose every object `age -r` then encrypted (to
    two recipients, as 0.3.13 would store it) restores with an identity
    given inline or as a file; a mixed replica (some objects still
    plaintext) too."""
    one, two, _ = keys
    db, root = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", file_conf(tmp_path, db, root)], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 6, "--count", 150]]))
    assert rep.stop() == 0, rep.text()
    objs = objects(root)
    for i, path in enumerate(objs):
        if i != len(objs) - 1:  # the last one stays plaintext
            age_encrypt_in_place(__import__("pathlib").Path(path), one.recipient, two.recipient)
    for ident, name in ((two.secret, "inline"), (one.path, "file")):
        out = tmp_path / f"restored-{name}.db"
        r = run("restore", "-config", file_conf(tmp_path, db, root, identities=(ident,),
                                                extra=f"; {name}"), "-o", out, db)
        assert r.returncode == 0, r.stderr
        assert_same(db, out)


def damage(path, how, offset=None):
    data = bytearray(open(path, "rb").read())
    if how == "truncate":
        data = data[:len(data) - 7]
    elif how == "mac":
        # Another base64 letter (a flipped bit may leave the alphabet: a
        # malformed line, not a wrong MAC).
        data[offset] = ord("B") if data[offset] != ord("B") else ord("C")
    else:
        data[offset] ^= 0x01
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "header", "mac", "payload"])
def test_damaged_object_fails_clearly(litestream_bin, run, tmp_path, keys, how):
    one, _, _ = keys
    db, root = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", file_conf(tmp_path, db, root,
                                                           recipients=(one.recipient,))],
                     tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 7, "--count", 50]]))
    assert rep.stop() == 0, rep.text()
    snap = next(p for p in objects(root) if p.endswith(".snapshot.lz4"))
    raw = open(snap, "rb").read()
    mac_line = raw.index(b"\n--- ") + 1
    offsets = {"header": raw.index(b"-> X25519 ") + 12, "mac": mac_line + 10,
               "payload": mac_line + 48 + 16 + 30}
    damage(snap, how, offsets.get(how))
    key = "snapshots/" + os.path.basename(snap)
    words = {"truncate": "corrupt or truncated", "header": "encrypted with age",
             "mac": "header MAC mismatch", "payload": "fails authentication"}
    err = restore_fails(run, file_conf(tmp_path, db, root, identities=(one.path,)), db,
                        tmp_path / "out.db", key, "encrypted with age", words[how])
    # The identity appears in no message.
    assert one.secret not in err


def test_identity_rules(litestream_bin, run, tmp_path, keys):
    """World-readable identity files are refused; bad keys are named, secrets never shown."""
    one, _, _ = keys
    db, root = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    os.chmod(one.path, 0o644)
    r = run("restore", "-config", file_conf(tmp_path, db, root, identities=(one.path,)),
            "-o", tmp_path / "o.db", db)
    assert r.returncode != 0 and str(one.path) in r.stderr and "0644" in r.stderr, r.stderr
    os.chmod(one.path, 0o600)
    bad = one.secret[:-3] + ("QQQ" if not one.secret.endswith("QQQ") else "PPP")
    r = run("restore", "-config", file_conf(tmp_path, db, root, identities=(bad,)),
            "-o", tmp_path / "o.db", db)
    assert r.returncode != 0 and "age-identities" in r.stderr and bad not in r.stderr, r.stderr
    r = run("restore", "-config", file_conf(tmp_path, db, root, recipients=("age1notakey",)),
            "-o", tmp_path / "o.db", db)
    assert r.returncode != 0 and "age1notakey" in r.stderr, r.stderr


def test_validation_on_encrypted_replica(litestream_bin, run, tmp_path, keys):
    """The daemon holding the identity validates its encrypted replica; the
    inline identity appears neither in the log nor in status."""
    one, _, _ = keys
    db, root = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conf = file_conf(tmp_path, db, root, recipients=(one.recipient,), identities=(one.secret,),
                     extra="validation-interval = 300ms")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    wait_writers(start_writers(db, [["--seed", 8, "--count", 60]]))
    wait_for(lambda: "validation ok" in rep.text(), timeout=60, what="a validation")
    st = run("status", "-config", conf)
    assert rep.stop() == 0, rep.text()
    assert one.secret not in rep.text() and one.secret not in st.stdout + st.stderr
    assert "ERROR" not in rep.text(), rep.text()


def kill_restart_resume(litestream_bin, run, tmp_path, db, conf, conf_restore, snapshot_objects,
                        drop_record=False):
    """Writes, kill -9, restarts with the same (recipients-only) config and
    writes again; returns the second log. snapshot_objects() -> {key: meta}."""
    make_db(db)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log1")
    wait_writers(start_writers(db, [["--seed", 9, "--count", 120, "--sleep", 0.002]]))
    # Everything written is shipped (the sidecar is then idle), then kill -9.
    before = {}

    def settled():
        nonlocal before
        now = snapshot_objects()
        same = now == before and len(now) > 1
        before = now
        return same
    wait_for(settled, timeout=60, interval=0.7, what="uploads to settle")
    rep.kill()
    if drop_record:
        for p in shadow_dir(db).glob("generations/*/*.segment-ends"):
            p.unlink()
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log2")
    wait_writers(start_writers(db, [["--seed", 10, "--count", 120, "--sleep", 0.002]]))
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "resuming at" in log and "new generation" not in log, log
    assert "ERROR" not in log and "magic" not in log, log
    after = snapshot_objects()
    rewritten = [k for k, v in before.items() if after.get(k) != v]
    out = tmp_path / "restored.db"
    r = run("restore", "-config", conf_restore, "-o", out, db)
    assert r.returncode == 0, r.stderr
    assert_same(db, out)
    return log, rewritten


def test_kill9_restart_recipients_only_file(litestream_bin, run, tmp_path, keys):
    one, _, _ = keys
    db, root = tmp_path / "app.db", tmp_path / "replica"
    conf = file_conf(tmp_path, db, root, recipients=(one.recipient,))
    log, rewritten = kill_restart_resume(
        litestream_bin, run, tmp_path, db, conf,
        file_conf(tmp_path, db, root, identities=(one.path,)), lambda: stat_all(root))
    assert rewritten == [], f"re-uploaded: {rewritten}"


def test_restart_without_record_ships_last_segment_again(litestream_bin, run, tmp_path, keys):
    """No local record of the last segment's end and no identity: that one
    segment goes again from its start (same name), nothing else."""
    one, _, _ = keys
    db, root = tmp_path / "app.db", tmp_path / "replica"
    conf = file_conf(tmp_path, db, root, recipients=(one.recipient,))
    log, rewritten = kill_restart_resume(
        litestream_bin, run, tmp_path, db, conf,
        file_conf(tmp_path, db, root, identities=(one.path,)), lambda: stat_all(root),
        drop_record=True)
    assert "shipping it again from its start" in log, log
    assert len(rewritten) == 1 and rewritten[0].endswith(".wal.lz4"), rewritten


def test_kill9_restart_recipients_only_s3(litestream_bin, run, tmp_path, keys, s3_server):
    from test_s3 import list_objects, new_prefix, write_conf as s3_conf
    one, _, _ = keys
    db, prefix = tmp_path / "app.db", new_prefix()
    conf = s3_conf(tmp_path / "ls.conf", db, s3_server, prefix, age_recipients=one.recipient)
    conf_r = s3_conf(tmp_path / "ls-r.conf", db, s3_server, prefix, age_identities=one.path)
    log, rewritten = kill_restart_resume(litestream_bin, run, tmp_path, db, conf, conf_r,
                                         lambda: list_objects(s3_server, prefix))
    assert rewritten == [], f"re-uploaded: {rewritten}"
    got = tmp_path / "s3"
    s3_server.aws("s3", "cp", "--recursive", "--only-show-errors",
                  f"s3://{s3_server.bucket}/{prefix}", str(got))
    for path in objects(got):
        lz4_decode(age_decrypt(path, one))


def test_retention_on_encrypted_replica(litestream_bin, run, tmp_path, keys):
    """Retention needs names and times only: it trims an encrypted replica
    on a host without the identity, and what is left restores."""
    one, _, _ = keys
    db, root = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    conf = file_conf(tmp_path, db, root, recipients=(one.recipient,),
                     extra="snapshot-interval = 400ms\nretention = 1s\nretention-check-interval = 300ms")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log")
    snaps = lambda: [p for p in objects(root) if p.endswith(".snapshot.lz4")]
    # Writes go on (an idle database gets no new snapshot) until retention trims.
    for seed in range(11, 100):
        wait_writers(start_writers(db, [["--seed", seed, "--count", 60, "--sleep", 0.01]]))
        if "retention: removed" in rep.text():
            break
    assert "retention: removed" in rep.text(), rep.text()
    assert rep.stop() == 0, rep.text()
    assert "ERROR" not in rep.text(), rep.text()
    assert len(snaps()) >= 1
    out = tmp_path / "restored.db"
    r = run("restore", "-config", file_conf(tmp_path, db, root, identities=(one.path,)), "-o", out, db)
    assert r.returncode == 0, r.stderr
    assert_same(db, out)


def test_large_encrypted_snapshot_decrypts_as_it_downloads(litestream_bin, run, tmp_path, keys,
                                                           s3_server):
    """A snapshot above 8 MiB on S3 is decrypted and decompressed while its
    ranges arrive; a wrong identity stops at its header, nothing written."""
    from test_s3 import big_db, ls_env, new_prefix, write_conf as s3_conf
    one, _, other = keys
    db, prefix = tmp_path / "app.db", new_prefix()
    big_db(db, 9)
    conf = s3_conf(tmp_path / "ls.conf", db, s3_server, prefix, age_recipients=one.recipient)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=ls_env())
    wait_for(lambda: "snapshot written" in rep.text(), timeout=60, what="the snapshot")
    assert rep.stop() == 0, rep.text()
    good = s3_conf(tmp_path / "ls-r.conf", db, s3_server, prefix, age_identities=one.path)
    r = run("restore", "-v", "-config", good, "-o", tmp_path / "restored.db", db, env=ls_env())
    assert r.returncode == 0, r.stderr
    assert "as it downloads" in r.stderr, r.stderr
    assert_same(db, tmp_path / "restored.db")
    bad = s3_conf(tmp_path / "ls-w.conf", db, s3_server, prefix, age_identities=other.path)
    r = run("restore", "-config", bad, "-o", tmp_path / "wrong.db", db, env=ls_env())
    assert r.returncode != 0 and "snapshot.lz4: encrypted with age" in r.stderr, r.stderr
    assert not (tmp_path / "wrong.db").exists()
