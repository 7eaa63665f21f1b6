"""The credential chain and server-side encryption against a real S3
server: a radosgw of this module's own on loopback, with its STS enabled
(which the shared s3_server goes without: with STS on, radosgw answers a
wrong secret with AccessDenied rather than SignatureDoesNotMatch).

Temporary credentials here are real: radosgw's STS issues them
(GetSessionToken, with the test user's static key, which only the test
endpoint holds) and the same radosgw verifies their session token on
every request litestream makes. The endpoints that hand them over (the
container endpoint, IMDSv2, STS AssumeRoleWithWebIdentity) cannot run here,
so creds_server.py plays them on 127.0.0.1, speaking their documented
protocols. radosgw's STS issues sessions of at least 15 minutes, so the
test endpoint claims a short Expiration (a few seconds): litestream renews
them during the run as it would at the end of a real session, and each
renewal is a new session radosgw issued. Litestream itself never sees a
static key in these tests.

SSE-C is radosgw's own (rgw crypt require ssl = false: the test server
speaks plain http).
"""
import base64
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from creds_server import CredsServer, rgw_issuer
from s3server import rgw_server
from lsutil import Replicator, assert_same, start_writers, wait_for, wait_writers
from test_replicate import make_db
from test_s3 import new_prefix

SSE_KEY = base64.b64encode(bytes(range(32))).decode()
ROLE_ARN = "arn:aws:iam::123456789012:role/litestream-test"
# The key encrypts the session tokens radosgw issues; any 16 characters do.
RGW_CONF = """rgw s3 auth use sts = true
rgw sts key = litestreamtstkey
rgw crypt require ssl = false"""


@pytest.fixture(scope="module")
def rgw():
    """radosgw with STS and SSE-C over http, and the test user allowed to
    call GetSessionToken: the `user-policy` capability, then the policy."""
    try:
        import botocore.session
    except ImportError:
        pytest.skip("python3-botocore is not installed (awscli's dependency: deps/install --test)")
    with rgw_server(RGW_CONF) as s3:
        r = subprocess.run(["radosgw-admin", "-c", os.path.join(s3.dir, "ceph.conf"), "caps",
                            "add", "--uid=test", "--caps=user-policy=*"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        iam = botocore.session.get_session().create_client(
            "iam", endpoint_url=s3.endpoint, region_name=s3.region,
            aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
        iam.put_user_policy(UserName="test", PolicyName="litestream-sts", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["sts:GetSessionToken", "s3:*"],
                           "Resource": "*"}]}))
        yield s3


@pytest.fixture
def endpoint(rgw):
    server = CredsServer(rgw_issuer(rgw))
    yield server
    server.stop()


def role_env(tmp_path, **extra):
    """litestream's environment: no key anywhere (none of the caller's AWS
    or LITESTREAM settings, no credentials or config file), IMDS off unless
    a test turns it on."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("LITESTREAM_")}
    env.update({"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
                "AWS_CONFIG_FILE": "/nonexistent/config",
                "AWS_EC2_METADATA_DISABLED": "true"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def write_conf(tmp_path, db, s3, prefix, replica_extra="", extra_sections="",
               log_level="info"):
    conf = tmp_path / "litestream.conf"
    conf.write_text(f"""[litestream]
log-level = {log_level}
socket = {tmp_path / "ls.sock"}

[db app]
path = {db}
monitor-interval = 100ms

[replica s3]
db = app
type = s3
bucket = {s3.bucket}
path = {prefix}
endpoint = {s3.endpoint}
region = {s3.region}
sync-interval = 200ms
{replica_extra}
{extra_sections}""")
    return conf


def status(run, tmp_path, env):
    r = run("status", "-json", "-socket", tmp_path / "ls.sock", env=env)
    assert r.stdout.strip(), r.stderr
    return json.loads(r.stdout)


def replica_status(st, name):
    for db in st["dbs"]:
        for rep in db["replicas"]:
            if rep["name"] == name:
                return rep
    raise AssertionError(f"no replica {name} in {st}")


def restore(run, conf, db, out, env):
    r = run("restore", "-config", conf, "-o", out, db, env=env)
    assert r.returncode == 0, f"restore failed: {r.stderr}"
    return r


def replicate_while_renewing(litestream_bin, run, tmp_path, s3, endpoint, env, kind, seed):
    """Replicates a writer's transactions while the credentials (claimed to
    last 3 s, so renewed every 1.2 to 1.5 s) are renewed at least twice;
    returns the log, the replica's status and what the endpoint saw before
    the restore."""
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    conf = write_conf(tmp_path, db, s3, prefix)
    endpoint.lifetime = 3
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=env)
    writer = start_writers(db, [["--seed", seed, "--count", 150, "--sleep", 0.01]])
    wait_for(lambda: endpoint.count(kind) >= 3, timeout=30, what=f"two renewals from {kind}")
    st = replica_status(status(run, tmp_path, env), "s3")
    wait_writers(writer)
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "ERROR" not in log, log
    assert st["last_error"] is None, st
    seen = list(endpoint.log)
    restore(run, conf, db, tmp_path / "restored.db", env)
    assert_same(db, tmp_path / "restored.db")
    return log, st, seen


# ---- the sources, with credentials that radosgw issued and verifies --------------

def test_container_endpoint_credentials_renewed(litestream_bin, run, tmp_path, rgw,
                                                endpoint):
    """ECS / EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI with the
    Authorization token in a file; renewed before each claimed expiry."""
    token_file = tmp_path / "token"
    token_file.write_text("pod-identity-token-1\n")
    endpoint.container_token = "pod-identity-token-1"
    env = role_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{endpoint.url}/container",
                   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token_file)
    log, st, _ = replicate_while_renewing(litestream_bin, run, tmp_path, rgw, endpoint,
                                          env, "container", 21)
    name = f"container endpoint {endpoint.url}/container"
    assert f"s3 credentials from {name}, expiring at" in log, log
    assert st["credentials"] == name, st
    assert "pod-identity-token" not in log
    # Each fetch was a new session of radosgw's.
    assert len(set(endpoint.issued)) == len(endpoint.issued) >= 3


def test_imds_after_malformed_container_answer(litestream_bin, run, tmp_path, rgw,
                                               endpoint):
    """IMDSv2 (token PUT, role name, credentials), reached after the
    container endpoint answered malformed JSON: the chain moves on."""
    endpoint.broken = {"container"}
    env = role_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{endpoint.url}/container",
                   AWS_EC2_METADATA_DISABLED="false",
                   AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoint.url)
    log, st, seen = replicate_while_renewing(litestream_bin, run, tmp_path, rgw, endpoint,
                                             env, "imds-token", 22)
    name = f"instance metadata (IMDSv2) {endpoint.url}"
    assert f"s3 credentials from {name}" in log, log
    assert st["credentials"] == name, st
    # Renewals go to the source in use: the sidecar asked the container endpoint once.
    assert sum(1 for k, _ in seen if k == "container") == 1, seen
    assert sum(1 for k, _ in seen if k == "imds-token") >= 3, seen
    assert "malformed container credentials: not JSON" not in log  # a fallback, not an error


def test_rejected_session_token_renewed_and_request_retried(run, tmp_path, rgw, endpoint):
    """The first credentials carry a session token radosgw rejects (as an
    expired one would be): the request is re-signed with freshly fetched
    credentials and sent once more, and succeeds."""
    endpoint.bogus_first = 1
    env = role_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{endpoint.url}/container")
    r = run("generations", rgw.replica_url(new_prefix()), env=env)
    assert r.returncode == 0, r.stderr
    assert "403 AccessDenied" in r.stderr and "sending again with new credentials" in r.stderr, \
        r.stderr
    assert endpoint.count("container") == 2


def test_web_identity_expired_then_replaced_token_file(litestream_bin, run, tmp_path, rgw,
                                                       endpoint):
    """IRSA: the token file is read at every fetch. An expired token is
    STS's ExpiredTokenException, reported; once the file is replaced the
    next try succeeds; a renewal that meets an STS error answer is tried
    again; the rotated token is what the renewals carry."""
    token = tmp_path / "token"

    def put_token(text):
        (tmp_path / "token.tmp").write_text(text)
        os.replace(tmp_path / "token.tmp", token)
    put_token("expired-token")
    endpoint.sts_tokens = {"expired-token": "expired", "token-1": "ok", "token-2": "ok"}
    endpoint.lifetime = 3
    env = role_env(tmp_path, AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=token,
                   AWS_ROLE_SESSION_NAME="litestream-test", AWS_ENDPOINT_URL_STS=endpoint.url)
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    conf = write_conf(tmp_path, db, rgw, prefix, log_level="debug")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=env)
    writer = start_writers(db, [["--seed", 23, "--count", 150, "--sleep", 0.01]])
    wait_for(lambda: "ExpiredTokenException" in rep.text(), timeout=20,
             what="the expired token to be reported")
    put_token("token-1")
    wait_for(lambda: "s3 credentials from web identity" in rep.text(), timeout=20,
             what="credentials from STS")
    # Kubernetes rotates the token; STS trips once on the way.
    endpoint.sts_fail_next = 1
    endpoint.sts_tokens["token-1"] = "expired"
    put_token("token-2")
    wait_for(lambda: any(d[3] == "token-2" for k, d in endpoint.log if k == "sts") and
             endpoint.count("sts") >= 5, timeout=30, what="renewals with the new token")
    wait_writers(writer)
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "IDPCommunicationError" in log, log
    assert "AssumeRoleWithWebIdentity arn:aws:iam::123456789012:role/litestream-test: HTTP 400 " \
           "ExpiredTokenException" in log, log
    sts = [d for k, d in endpoint.log if k == "sts"]
    assert all(a == "AssumeRoleWithWebIdentity" and arn == ROLE_ARN and s == "litestream-test"
               for a, arn, s, _ in sts), sts
    assert "token-1" not in log and "token-2" not in log
    restore(run, conf, db, tmp_path / "restored.db", env)
    assert_same(db, tmp_path / "restored.db")


def test_credential_process(litestream_bin, run, tmp_path, rgw, endpoint):
    """credential_process of a profile in AWS_CONFIG_FILE: run through
    /bin/sh for every fetch, its JSON Version 1 on standard output."""
    creds = endpoint.credentials()
    out = tmp_path / "creds.json"
    out.write_text(json.dumps({"Version": 1, "AccessKeyId": creds["AccessKeyId"],
                               "SecretAccessKey": creds["SecretAccessKey"],
                               "SessionToken": creds["SessionToken"],
                               "Expiration": creds["Expiration"]}))
    runs = tmp_path / "runs"
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = us-east-1\n[profile ci]\n"
                      f"credential_process = sh -c 'echo run >> \"{runs}\"; cat \"{out}\"'\n")
    # A credentials file without that profile: not a typo, the chain goes on.
    other = tmp_path / "aws-credentials"
    other.write_text("[default]\naws_access_key_id = NOTUSED\naws_secret_access_key = notused\n")
    env = role_env(tmp_path, AWS_CONFIG_FILE=config, AWS_PROFILE="ci",
                   AWS_SHARED_CREDENTIALS_FILE=other)
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    wait_writers(start_writers(db, [["--seed", 24, "--count", 50]]))
    conf = write_conf(tmp_path, db, rgw, prefix)
    r = run("replicate", "-once", "-config", conf, env=env)
    assert r.returncode == 0, r.stderr
    assert f"s3 credentials from credential_process of profile [ci] in {config}" in r.stderr
    assert creds["SecretAccessKey"] not in r.stderr
    assert runs.read_text().count("run") == 1
    restore(run, conf, db, tmp_path / "restored.db", env)
    assert_same(db, tmp_path / "restored.db")


# ---- bad input ------------------------------------------------------------------

@pytest.fixture
def silent_endpoint():
    """A TCP server on 127.0.0.1 that accepts and never answers: IMDS in a
    container behind a hop limit of 1, where the answer never arrives."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held, stop = [], threading.Event()

    def hold():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=hold, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_no_credentials_names_every_source_and_stalls_nothing(litestream_bin, run, tmp_path,
                                                              silent_endpoint):
    """No source yields credentials: a failing credential_process, an IMDS
    endpoint that never answers (its timeout decides). The S3 replica says
    so naming every source, within seconds, while the file replica of the
    same database replicates from the start, unaffected."""
    config = tmp_path / "aws-config"
    config.write_text("[default]\ncredential_process = sh -c 'echo nope >&2; exit 3'\n")
    env = role_env(tmp_path, AWS_CONFIG_FILE=config, AWS_EC2_METADATA_DISABLED="false",
                   AWS_EC2_METADATA_SERVICE_ENDPOINT=silent_endpoint)
    db = tmp_path / "app.db"
    make_db(db)
    conf = write_conf(tmp_path, db, type("S3", (), {"bucket": "b", "endpoint":
                                                    "http://127.0.0.1:9", "region": "us-east-1"}),
                      "p", extra_sections=f"[replica file]\ndb = app\ntype = file\n"
                                          f"path = {tmp_path / 'replica'}\nsync-interval = 0\n")
    started = time.monotonic()
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=env)
    wait_for(lambda: (tmp_path / "ls.sock").exists(), timeout=10, what="the control socket")
    wait_writers(start_writers(db, [["--seed", 25, "--count", 30]]))
    # While IMDS is still being waited for, the file replica keeps up.
    wait_for(lambda: replica_status(status(run, tmp_path, env), "file")["lag_bytes"] == 0,
             timeout=10, what="the file replica to catch up")
    early = time.monotonic() - started
    wait_for(lambda: "no S3 credentials found" in rep.text(), timeout=20,
             what="the missing credentials to be reported")
    took = time.monotonic() - started
    s3 = replica_status(status(run, tmp_path, env), "s3")
    assert rep.stop() in (0, 1)
    log = rep.text()
    assert early < 2.5, f"the file replica waited {early:.1f} s"
    assert 2.5 < took < 8, f"{took:.1f} s before the error: {log}"
    err = s3["last_error"] or ""
    assert ("no S3 credentials found: access-key-id, LITESTREAM_ACCESS_KEY_ID, AWS_ACCESS_KEY_ID: "
            "not set; no /nonexistent/credentials; web identity: AWS_ROLE_ARN not set; "
            "credential_process [default]: exited with status 3; container endpoint: "
            f"AWS_CONTAINER_CREDENTIALS_*_URI not set; IMDSv2 {silent_endpoint}: PUT "
            f"/latest/api/token: Operation timed out after 3") in err, err
    # The log has the whole of it at once, and says it again at most once a minute.
    assert log.count("none in hand; trying again in") == 1, log
    assert s3["credentials"] is None, s3
    r = run("restore", "-config", conf, "-replica", "file", "-o", tmp_path / "restored.db", db,
            env=role_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert_same(db, tmp_path / "restored.db")


def test_misconfigured_source_is_an_error_at_start(run, tmp_path):
    """A source configured by halves stops the start, naming what is
    missing, rather than silently moving on to another source."""
    env = role_env(tmp_path, AWS_ROLE_ARN=ROLE_ARN)
    r = run("generations", "s3://b/p?endpoint=http://127.0.0.1:9", env=env)
    assert r.returncode != 0
    assert "web identity: AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not" in r.stderr
    env = role_env(tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://example.com/creds")
    r = run("generations", "s3://b/p?endpoint=http://127.0.0.1:9", env=env)
    assert r.returncode != 0
    assert "plain http to example.com is not allowed" in r.stderr, r.stderr


# ---- server-side encryption -----------------------------------------------------

def static_env(s3, tmp_path):
    return role_env(tmp_path, LITESTREAM_ACCESS_KEY_ID=s3.access_key,
                    LITESTREAM_SECRET_ACCESS_KEY=s3.secret_key)


def s3_client(s3):
    import botocore.session
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=s3.endpoint, region_name=s3.region,
        aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)


def test_sse_c(litestream_bin, run, tmp_path, rgw):
    """SSE-C: every object (a multipart snapshot among them) is stored
    encrypted with the customer's key; without the key radosgw will not
    hand a byte of it out, with it the restore is equal."""
    pytest.importorskip("botocore")
    db, prefix = tmp_path / "app.db", new_prefix()
    make_db(db)
    # A first snapshot above part-size: multipart, parts and HEAD with SSE-C.
    wait_writers(start_writers(db, [["--seed", 26, "--count", 1, "--big-every", 1,
                                     "--big-bytes", 6 << 20]]))
    conf = write_conf(tmp_path, db, rgw, prefix,
                      replica_extra=f"sse-customer-key = {SSE_KEY}\npart-size = 5MB\n")
    env = static_env(rgw, tmp_path)
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log", env=env)
    wait_writers(start_writers(db, [["--seed", 27, "--count", 100, "--sleep", 0.005]]))
    assert rep.stop() == 0, rep.text()
    log = rep.text()
    assert "ERROR" not in log, log
    assert SSE_KEY not in log
    c = s3_client(rgw)
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=rgw.bucket,
                                                Prefix=prefix + "/").get("Contents", [])]
    assert any(k.endswith(".snapshot.lz4") for k in keys) and any(
        k.endswith(".wal.lz4") for k in keys), keys
    raw = bytes(range(32))
    for key in keys:
        with pytest.raises(Exception) as e:
            c.get_object(Bucket=rgw.bucket, Key=key)["Body"].read()
        assert "400" in str(e.value) or "InvalidArgument" in str(e.value), e.value
        body = c.get_object(Bucket=rgw.bucket, Key=key, SSECustomerAlgorithm="AES256",
                            SSECustomerKey=raw)["Body"].read()
        assert body[:4] == b"\x04\x22\x4d\x18"  # an LZ4 frame
    restore(run, conf, db, tmp_path / "restored.db", env)
    assert_same(db, tmp_path / "restored.db")
    # Without the key (the URL form, no sse-customer-key): refused, nothing written.
    r = run("restore", "-o", tmp_path / "nokey.db", rgw.replica_url(prefix), env=env)
    assert r.returncode != 0
    assert not (tmp_path / "nokey.db").exists()
    assert "400" in r.stderr, r.stderr


def test_sse_kms_headers_reach_the_server(litestream_bin, tmp_path, rgw):
    """sse = aws:kms with a key id: radosgw has no KMS here and says it
    cannot find that key, which shows both headers arrived, signed."""
    db = tmp_path / "app.db"
    make_db(db)
    conf = write_conf(tmp_path, db, rgw, new_prefix(),
                      replica_extra="sse = aws:kms\nsse-kms-key-id = litestream-test-key\n")
    rep = Replicator(litestream_bin, ["-config", conf], tmp_path / "log",
                     env=static_env(rgw, tmp_path))
    wait_for(lambda: "kms-keyid: litestream-test-key" in rep.text(), timeout=20,
             what="radosgw's answer about the KMS key")
    rep.stop()
    assert "400 InvalidArgument" in rep.text()
