"""The S3 test server itself (s3server.py): a real client can store and
read back an object, and the server checks signatures like AWS does, so
tests that rely on it to judge the program's requests can trust it."""
import hashlib
import json
import os


def test_server_fields(s3_server):
    assert s3_server.endpoint == f"http://127.0.0.1:{s3_server.port}"
    assert s3_server.bucket and s3_server.access_key and s3_server.secret_key
    assert s3_server.region
    url = s3_server.replica_url("/db/")
    assert url.startswith(f"s3://{s3_server.bucket}/db?")
    assert "force-path-style=true" in url


def test_put_get_roundtrip(s3_server, tmp_path):
    data = os.urandom(300_000)
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    key = "roundtrip/object.bin"

    r = s3_server.aws("s3api", "put-object", "--bucket", s3_server.bucket, "--key", key,
                      "--body", src)
    # A single PUT's ETag is the MD5 of the bytes stored.
    assert json.loads(r.stdout)["ETag"].strip('"') == hashlib.md5(data).hexdigest()

    r = s3_server.aws("s3api", "get-object", "--bucket", s3_server.bucket, "--key", key, dst)
    assert json.loads(r.stdout)["ContentLength"] == len(data)
    assert dst.read_bytes() == data

    r = s3_server.aws("s3api", "list-objects-v2", "--bucket", s3_server.bucket,
                      "--prefix", "roundtrip/")
    assert [o["Key"] for o in json.loads(r.stdout)["Contents"]] == [key]


def test_wrong_secret_is_rejected(s3_server, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"x")
    s3_server.aws("s3api", "put-object", "--bucket", s3_server.bucket, "--key", "signed",
                  "--body", src)

    # --debug shows the response body: awscli's own message for this error
    # is unhelpful because rgw leaves <Message> empty.
    r = s3_server.aws("--debug", "s3api", "get-object", "--bucket", s3_server.bucket,
                      "--key", "signed", tmp_path / "out.bin", check=False,
                      secret_key="not-" + s3_server.secret_key)
    assert r.returncode != 0
    assert "<Code>SignatureDoesNotMatch</Code>" in r.stderr
    assert not (tmp_path / "out.bin").exists()
