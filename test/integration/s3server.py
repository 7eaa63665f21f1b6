"""A real S3 server for the integration tests: Ceph's RADOS Gateway, one
node, data in memory, on 127.0.0.1 (test/rgw/rgw-up.sh starts it).

The session-scoped fixture `s3_server` starts it once on two free ports in
a fresh temporary directory, creates a bucket with a real S3 client
(Debian's awscli v2, always /usr/bin/aws: another `aws` may come first on
PATH), yields an S3Server, and stops it when the session ends.

- radosgw not installed: every test using the fixture is skipped, saying
  how to install it.
- radosgw installed but it does not come up, or the bucket cannot be
  created: those tests fail (error), showing the script's output and the
  tail of every daemon log.

Registered in conftest.py with `pytest_plugins = ["s3server"]`.

`rgw_server(extra_conf)` starts another one the same way, with extra lines
for radosgw's configuration, for tests that need radosgw set up otherwise
(its STS, which changes how it answers a wrong secret): a context manager
yielding an S3Server, under the same skip and failure rules.
"""
import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RGW_UP = os.path.join(HERE, "..", "rgw", "rgw-up.sh")
RGW_DOWN = os.path.join(HERE, "..", "rgw", "rgw-down.sh")
AWS = "/usr/bin/aws"

ACCESS_KEY = "LITESTREAMTESTKEY"
SECRET_KEY = "litestream-test-secret-key"
REGION = "us-east-1"
BUCKET = "litestream-test"
LOG_TAIL_LINES = 40


@dataclasses.dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    access_key: str
    secret_key: str
    region: str
    port: int
    dir: str  # where the cluster, its config and logs live

    def replica_url(self, prefix):
        """A Litestream replica URL for s3://BUCKET/PREFIX on this server."""
        query = urllib.parse.urlencode(
            {"endpoint": self.endpoint, "region": self.region, "force-path-style": "true"})
        return f"s3://{self.bucket}/{prefix.strip('/')}?{query}"

    def env(self, access_key=None, secret_key=None):
        """Environment for an S3 client run against this server: our keys,
        and nothing of the user's AWS configuration or Python setup."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update({
            "AWS_ACCESS_KEY_ID": access_key or self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": os.path.join(self.dir, "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.dir, "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        })
        return env

    def aws(self, *args, check=True, access_key=None, secret_key=None, timeout=120):
        """Runs `/usr/bin/aws --endpoint-url ENDPOINT ARGS...`; returns the
        CompletedProcess (text). With check, a non-zero exit fails the test
        with the client's output."""
        cmd = [AWS, "--endpoint-url", self.endpoint, *map(str, args)]
        r = subprocess.run(cmd, env=self.env(access_key, secret_key), capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout}{r.stderr}",
                        pytrace=False)
        return r


def _free_ports(n):
    """n distinct ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _log_tails(directory):
    out = []
    logdir = os.path.join(directory, "log")
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        path = os.path.join(logdir, name)
        with open(path, errors="replace") as f:
            lines = f.readlines()[-LOG_TAIL_LINES:]
        if lines:
            out.append(f"--- {path} (last {len(lines)} lines)\n{''.join(lines)}")
    return "\n".join(out) or f"(no logs under {logdir})"


def _start(directory, extra_conf=""):
    """Starts rgw in directory; returns its port, or fails the test."""
    env = dict(os.environ, RGW_EXTRA_CONF=extra_conf)
    for attempt in range(2):
        port, mon_port = _free_ports(2)
        try:
            r = subprocess.run(["bash", RGW_UP, directory, str(port), str(mon_port), ACCESS_KEY,
                                SECRET_KEY], capture_output=True, text=True, timeout=300, env=env)
        except subprocess.TimeoutExpired as e:
            subprocess.run(["bash", RGW_DOWN, directory], capture_output=True, timeout=60)
            pytest.fail(f"radosgw is installed but rgw-up.sh did not finish in {e.timeout} s "
                        f"(files kept in {directory}):\n{_log_tails(directory)}", pytrace=False)
        if r.returncode == 0:
            return port
        # Another process may have taken a port between our probe and the
        # script's: pick new ones once.
        if "already in use" not in r.stderr or attempt == 1:
            # The script stopped what it started and printed its logs' tails.
            pytest.fail(f"radosgw is installed but did not start (rgw-up.sh exited with "
                        f"{r.returncode}; files kept in {directory}):\n{r.stdout}{r.stderr}",
                        pytrace=False)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def rgw_server(extra_conf=""):
    """A radosgw with its bucket, stopped on exit; see the module's comment."""
    if shutil.which("radosgw") is None:
        pytest.skip("radosgw is not installed (deps/install --test installs radosgw, ceph-mon, "
                    "ceph-osd)")
    if not os.access(AWS, os.X_OK):
        pytest.skip(f"{AWS} (awscli) is not installed (deps/install --test)")
    # Short: the daemons' admin sockets live under it and a Unix socket
    # path is limited to 108 bytes.
    directory = tempfile.mkdtemp(prefix="ls-rgw-")
    port = _start(directory, extra_conf)
    server = S3Server(endpoint=f"http://127.0.0.1:{port}", bucket=BUCKET, access_key=ACCESS_KEY,
                      secret_key=SECRET_KEY, region=REGION, port=port, dir=directory)
    ok = False
    try:
        r = server.aws("s3api", "create-bucket", "--bucket", BUCKET, check=False)
        if r.returncode != 0:
            pytest.fail(f"rgw started but creating bucket {BUCKET} failed:\n{r.stdout}{r.stderr}\n"
                        f"{_log_tails(directory)}", pytrace=False)
        ok = True
        yield server
    finally:
        subprocess.run(["bash", RGW_DOWN, directory], capture_output=True, timeout=60)
        if ok:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    with rgw_server() as server:
        yield server
