"""The container image (packaging/image/build) under real podman, as a
sidecar beside an application container.

The image is built once per session from the binary under test. The
application is a second container, Debian's sqlite3 shell in a root
filesystem of its own (podman --rootfs, no image pulled), writing a WAL
database on a named volume that the litestream container shares; litestream
ships it to the RADOS Gateway of the s3_server fixture over the host's
network. Checked: the image's configuration (non-root user, entrypoint,
command, health check, size); the sidecar ships the application's writes,
`podman stop` ends it with exit code 0 and a restore in a fresh container
equals the database; `podman healthcheck run` turns unhealthy while
radosgw is stopped and healthy again once it is back; a container started
on an empty volume with `replicate -restore-if-db-not-exists` comes up
with the data.

Skipped, with the reason, when podman is missing or does not work, and
when LITESTREAM_SANITIZERS=1 (a sanitizer build cannot go into the image;
the suite's plain build tests it). CONTAINERS_CONF defaults to
deps/containers.conf, as in packaging/image/build.
"""
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.request
import uuid

import pytest

from lsutil import assert_same, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("LITESTREAM_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(SRCDIR, "packaging", "image", "build")
PODMAN_CONF = os.path.join(SRCDIR, "deps", "containers.conf")
SQLITE3 = "/usr/bin/sqlite3"
APP_UID = "65532:65532"  # the image's litestream user: the database must be writable by both
MAX_IMAGE_BYTES = 40 * 1000 * 1000
RGW_NAME = "client.rgw.a"  # test/rgw/rgw-up.sh's radosgw


# ---- podman ------------------------------------------------------------------

# First, so that a missing podman skips before radosgw is started for nothing.
pytestmark = pytest.mark.usefixtures("podman_ok")


def podman_env():
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", PODMAN_CONF)
    return env


def podman(*args, check=True, timeout=120, **kw):
    """Runs `podman ARGS...`; with check, a non-zero exit fails the test."""
    cmd = ["podman", *map(str, args)]
    kw.setdefault("text", True)
    r = subprocess.run(cmd, env=podman_env(), capture_output=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout!s}{r.stderr!s}",
                    pytrace=False)
    return r


def is_sanitizer_build(path):
    with open(path, "rb") as f:
        data = f.read()
    return any(s in data for s in (b"__asan_", b"__ubsan_", b"__tsan_", b"__msan_"))


@pytest.fixture(scope="session")
def podman_ok(litestream_bin):
    if os.environ.get("LITESTREAM_SANITIZERS") == "1":
        pytest.skip("LITESTREAM_SANITIZERS=1: a sanitizer build cannot go into the image "
                    "(the plain build's run of the suite tests it)")
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (deps/install --test installs podman and runc)")
    if is_sanitizer_build(litestream_bin):
        pytest.skip(f"{litestream_bin} is a sanitizer build: it cannot go into the image")
    r = podman("info", check=False, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"podman does not work here (podman info exited with {r.returncode}): "
                    f"{r.stderr.strip()[-500:]}")


@pytest.fixture(scope="session")
def image(podman_ok, litestream_bin):
    """Builds the image from the binary under test, under a name of its own
    (a user's localhost/litestream stays as it was); yields NAME:TAG."""
    name = f"localhost/litestream-test-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    r = subprocess.run(["sh", BUILD, "--binary", litestream_bin, "--name", name, "--tag", "test"],
                       env=podman_env(), capture_output=True, text=True, timeout=300)
    took = time.monotonic() - start
    try:
        assert r.returncode == 0, \
            f"packaging/image/build failed ({took:.1f}s):\n{r.stdout}{r.stderr}"
        print(f"image built in {took:.1f}s: {r.stdout.strip()}")
        yield f"{name}:test"
    finally:
        podman("rmi", "-f", f"{name}:test", f"{name}:latest", check=False)


@pytest.fixture(scope="session")
def app_rootfs(podman_ok, tmp_path_factory):
    """A root filesystem with the sqlite3 shell and what ldd says it loads."""
    if not os.access(SQLITE3, os.X_OK):
        pytest.skip(f"{SQLITE3} is not installed (deps/install --test installs sqlite3)")
    root = tmp_path_factory.mktemp("app-rootfs")
    for d in ("lib", "lib64"):
        if os.path.islink(f"/{d}"):
            os.symlink(os.readlink(f"/{d}"), root / d)
    out = subprocess.run(["ldd", SQLITE3], capture_output=True, text=True, check=True).stdout
    files = [SQLITE3]
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > 2 and parts[2].startswith("/"):
            files.append(parts[2])
        elif parts and parts[0].startswith("/"):
            files.append(parts[0])
    for f in files:
        dest = root / os.path.realpath(os.path.dirname(f)).lstrip("/")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest / os.path.basename(f))  # links followed
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root, 0o755)  # mktemp's 0700 would keep the application's user out
    # A new volume takes the owner of the directory it is mounted on, as
    # it does in the litestream image, whichever container mounts it first.
    (root / "data").mkdir()
    if os.geteuid() == 0:
        os.chown(root / "data", *map(int, APP_UID.split(":")))
    else:
        podman("unshare", "chown", APP_UID, root / "data")
    return root


class Pod:
    """The containers and volumes of one test, all removed at its end."""

    def __init__(self, image, app_rootfs, s3):
        self.image, self.app_rootfs, self.s3 = image, app_rootfs, s3
        self.tag = uuid.uuid4().hex[:8]
        self.containers, self.volumes = [], []

    def volume(self):
        name = f"ls-test-{self.tag}-v{len(self.volumes)}"
        podman("volume", "create", name)
        self.volumes.append(name)
        return name

    def mountpoint(self, volume):
        return podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip()

    def app(self, volume, sql):
        """The application: one sqlite3 run on the shared volume, as the
        user the sidecar runs as; its statements come on standard input."""
        script = f".bail on\n.timeout 10000\n{sql}\n"
        r = podman("run", "--rm", "-i", "--network", "none", "--user", APP_UID,
                   "-v", f"{volume}:/data", "--rootfs", self.app_rootfs,
                   SQLITE3, "/data/app.db", input=script)
        return r.stdout

    def replica_url(self, prefix):
        return self.s3.replica_url(prefix)

    def env_args(self, prefix):
        return ["-e", "LITESTREAM_DB_PATH=/data/app.db",
                "-e", f"LITESTREAM_REPLICA_URL={self.replica_url(prefix)}",
                "-e", f"LITESTREAM_ACCESS_KEY_ID={self.s3.access_key}",
                "-e", f"LITESTREAM_SECRET_ACCESS_KEY={self.s3.secret_key}"]

    def sidecar(self, volume, prefix, *command):
        """Starts the image detached on the volume with the host's network,
        its default command unless command is given; returns its name. The
        health check runs only when the test asks (podman healthcheck run):
        its timer needs systemd, which the test machines lack."""
        name = f"ls-test-{self.tag}-c{len(self.containers)}"
        self.containers.append(name)
        podman("run", "-d", "--name", name, "--network", "host", "-v", f"{volume}:/data",
               "--health-interval", "disable", *self.env_args(prefix), self.image, *command)
        return name

    def wait(self, cond, name, what, timeout=30, interval=0.3):
        """wait_for, with the container's log in the failure."""
        try:
            wait_for(cond, timeout=timeout, interval=interval, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs(name)}") from None

    def logs(self, name):
        r = podman("logs", name, check=False)
        return f"--- podman logs {name}\n{r.stdout}{r.stderr}"

    def status(self, name):
        r = podman("exec", name, "litestream", "status", "-json", check=False)
        assert r.returncode in (0, 1), f"status: {r.stderr}\n{self.logs(name)}"
        return json.loads(r.stdout) if r.stdout.strip() else None

    def shipped(self, name):
        """True once the database is open and its replica is at its position."""
        st = self.status(name)
        if not st or not st.get("dbs"):
            return False
        db = st["dbs"][0]
        reps = db.get("replicas") or []
        return (db.get("state") == "open" and db.get("position") is not None and
                len(reps) == 1 and reps[0].get("position") == db["position"])

    def healthy(self, name):
        return podman("healthcheck", "run", name, check=False, timeout=30).returncode == 0

    def stop(self, name):
        """podman stop (SIGTERM); returns the container's exit code."""
        podman("stop", "-t", "30", name, timeout=60)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())

    def restore(self, prefix):
        """Restores the replica in a fresh container onto a fresh volume;
        returns the restored file's path on the host."""
        vol = self.volume()
        name = f"ls-test-{self.tag}-c{len(self.containers)}"
        self.containers.append(name)
        podman("run", "--name", name, "--network", "host", "-v", f"{vol}:/data",
               "--health-interval", "disable", *self.env_args(prefix), self.image,
               "restore", "-o", "/data/restored.db", self.replica_url(prefix))
        return os.path.join(self.mountpoint(vol), "restored.db")

    def close(self):
        for c in self.containers:
            podman("rm", "-f", "-v", "-t", "0", c, check=False)
        for v in self.volumes:
            podman("volume", "rm", "-f", v, check=False)


@pytest.fixture
def pod(image, app_rootfs, s3_server):
    p = Pod(image, app_rootfs, s3_server)
    yield p
    p.close()


def new_prefix():
    return f"container-{uuid.uuid4().hex[:10]}"


SCHEMA = """PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, v BLOB);
"""


def rows_sql(first, count):
    return (f"INSERT INTO t(n, v) SELECT value, randomblob(200) "
            f"FROM generate_series({first}, {first + count - 1});")


# ---- radosgw stopped and started again ----------------------------------------

def rgw_stop(s3):
    """Stops the fixture's radosgw (not its OSD: the objects stay)."""
    pidfile = os.path.join(s3.dir, "run", f"{RGW_NAME}.pid")
    with open(pidfile) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)

    def gone():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(") ")[1].startswith("Z")
        except FileNotFoundError:
            return True
    wait_for(gone, timeout=20, what="radosgw to exit")


def rgw_answers(s3):
    try:
        urllib.request.urlopen(s3.endpoint + "/", timeout=1).close()
        return True
    except OSError:
        return False


def rgw_start(s3):
    conf = os.path.join(s3.dir, "ceph.conf")
    with open(os.path.join(s3.dir, "log", "rgw.stderr"), "ab") as err:
        subprocess.run(["radosgw", "-c", conf, "-n", RGW_NAME], stderr=err, check=True,
                       timeout=120)
    wait_for(lambda: rgw_answers(s3), timeout=30, interval=0.1, what="radosgw to answer again")


# ---- tests ---------------------------------------------------------------------

def test_image_configuration(image):
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    cfg = info["Config"]
    assert cfg["User"] == "litestream"
    assert cfg["Entrypoint"] == ["litestream"]
    assert cfg["Cmd"] == ["replicate", "-config", "/etc/litestream.conf"]
    test = (info.get("Healthcheck") or {}).get("Test")
    assert test and test[:4] == ["CMD", "litestream", "status", "-max-lag"], test
    assert info["Size"] <= MAX_IMAGE_BYTES, f"the image is {info['Size']} bytes"
    # Its files, from `podman export` of a container never started.
    name = f"ls-test-{uuid.uuid4().hex[:8]}"
    podman("create", "--name", name, image)
    try:
        tar = podman("export", name, text=False).stdout
    finally:
        podman("rm", "-f", "-v", name, check=False)
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        members = {m.name.lstrip("./").rstrip("/"): m for m in t.getmembers()}
        bundle = t.extractfile(members["etc/ssl/certs/ca-certificates.crt"]).read()
        passwd = t.extractfile(members["etc/passwd"]).read().decode()
    assert "litestream:x:65532:65532:" in passwd
    with open("/etc/ssl/certs/ca-certificates.crt", "rb") as f:
        assert bundle == f.read()
    data, run = members["data"], members["run"]
    assert (data.uid, data.gid, data.mode & 0o7777) == (65532, 65532, 0o750)
    assert run.mode & 0o7777 == 0o1777 and members["var/run"].linkname == "../run"
    assert members["usr/bin/litestream"].uid == 0
    # The binary and what it loads, nothing else that runs: no shell.
    progs = sorted(n for n, m in members.items() if m.isfile() and m.mode & 0o111 and
                   ".so" not in n)
    assert progs == ["usr/bin/litestream"], progs


def test_sidecar_ships_app_writes_stops_cleanly_and_restores(pod):
    vol = pod.volume()
    prefix = new_prefix()
    pod.app(vol, SCHEMA + rows_sql(1, 500))
    side = pod.sidecar(vol, prefix)
    pod.wait(lambda: pod.shipped(side), side, "the first shipment")
    # The sidecar runs as the image's user, not root.
    pid = podman("inspect", "--format", "{{.State.Pid}}", side).stdout.strip()
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == ["65532"] * 4, uids
    # More writes while it runs; then stop it at once: the last ones are
    # shipped by the shutdown.
    for i in range(3):
        pod.app(vol, rows_sql(1000 + 100 * i, 100) + f"UPDATE t SET n = -n WHERE id % 7 = {i};")
    rc = pod.stop(side)
    assert rc == 0, f"the sidecar exited with {rc}\n{pod.logs(side)}"
    source = os.path.join(pod.mountpoint(vol), "app.db")
    assert_same(source, pod.restore(prefix))


def test_healthcheck_follows_radosgw(pod):
    vol = pod.volume()
    pod.app(vol, SCHEMA + rows_sql(1, 100))
    side = pod.sidecar(vol, new_prefix())
    pod.wait(lambda: pod.shipped(side), side, "the first shipment")
    assert pod.healthy(side), pod.logs(side)
    rgw_stop(pod.s3)
    try:
        # Nothing to ship is nothing to fail: the application writes.
        pod.app(vol, rows_sql(1000, 50))
        pod.wait(lambda: not pod.healthy(side), side,
                 "the health check to fail with radosgw stopped", interval=0.5)
    finally:
        rgw_start(pod.s3)
    pod.wait(lambda: pod.healthy(side), side, "the health check to pass with radosgw back",
             timeout=40, interval=0.5)
    assert podman("inspect", "--format", "{{.State.Health.Status}}", side).stdout.strip() \
        == "healthy"
    assert pod.stop(side) == 0, pod.logs(side)


def test_restore_if_db_not_exists_on_an_empty_volume(pod):
    vol = pod.volume()
    prefix = new_prefix()
    pod.app(vol, SCHEMA + rows_sql(1, 300))
    side = pod.sidecar(vol, prefix)
    pod.wait(lambda: pod.shipped(side), side, "the first shipment")
    assert pod.stop(side) == 0, pod.logs(side)
    # A new pod: an empty volume, and the sidecar restores before it replicates.
    fresh = pod.volume()
    side2 = pod.sidecar(fresh, prefix, "replicate", "-restore-if-db-not-exists",
                        "-config", "/etc/litestream.conf")
    pod.wait(lambda: pod.shipped(side2), side2, "the restored database to be open")
    restored = os.path.join(pod.mountpoint(fresh), "app.db")
    assert_same(os.path.join(pod.mountpoint(vol), "app.db"), restored)
    # The application goes on with it, and the sidecar goes on shipping.
    pod.app(fresh, rows_sql(5000, 100))
    assert pod.stop(side2) == 0, pod.logs(side2)
    assert_same(restored, pod.restore(prefix))
