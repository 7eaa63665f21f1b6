"""OpenSSH's sshd (Debian openssh-server, installed by deps/install --test)
for the sftp tests: started by the test on a free port on 127.0.0.1 with
a host key made for it (ssh-keygen), its own sshd_config, authorized_keys
and log in a temporary directory, its SFTP subsystem internal-sftp, as
the current user (root in CI, hence PermitRootLogin yes). A client key
pair is made beside it and authorized.

.stop() kills the daemon and every session process under it (kill -9, a
server gone mid-upload), .freeze() and .thaw() stop and continue the
sessions (a server that stalls); .start() brings it back on the same port with
the same keys, or with a new host key after .new_host_key(). sshd or
ssh-keygen missing: the test is skipped, saying how to install them. It
does not come up: the test fails with its log.
"""
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

SSHD = os.environ.get("LITESTREAM_SSHD", "/usr/sbin/sshd")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path, comment):
    if os.path.exists(path):
        os.unlink(path)
        os.unlink(path + ".pub")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                   check=True, stdin=subprocess.DEVNULL)
    with open(path + ".pub") as f:
        return f.read().strip()


def fingerprint(pub_path):
    """SHA256:... of a public key file, as ssh-keygen -l prints it."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub_path], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


def descendants(pid):
    """Every process whose parent chain reaches pid (sshd's session processes)."""
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
                parents[int(d)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


class Sshd:
    def __init__(self, d):
        self.dir = d
        self.port = free_port()
        self.user = getpass.getuser()
        self.proc = None
        self.log_path = os.path.join(d, "sshd.log")
        self.host_key = os.path.join(d, "host_ed25519")
        self.client_key = os.path.join(d, "client_ed25519")
        self.host_pub = keygen(self.host_key, "litestream-test-host")
        client_pub = keygen(self.client_key, "litestream-test-client")
        with open(os.path.join(d, "authorized_keys"), "w") as f:
            f.write(client_pub + "\n")
        self.known_hosts = os.path.join(d, "known_hosts")
        self.write_known_hosts()
        self.config = os.path.join(d, "sshd_config")
        with open(self.config, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {os.path.join(d, "sshd.pid")}
AuthorizedKeysFile {os.path.join(d, "authorized_keys")}
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
MaxStartups 100
LogLevel VERBOSE
Subsystem sftp internal-sftp
""")

    def known_hosts_line(self):
        return f"[127.0.0.1]:{self.port} {self.host_pub}"

    def write_known_hosts(self):
        with open(self.known_hosts, "w") as f:
            f.write(self.known_hosts_line() + "\n")

    def new_host_key(self):
        """The server gets another host key (known_hosts keeps the old one)."""
        self.host_pub = keygen(self.host_key, "litestream-test-host-2")

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.settimeout(2)
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        with open(self.log_path, errors="replace") as f:
            pytest.fail(f"sshd did not come up on port {self.port}:\n{f.read()[-4000:]}")

    def stop(self):
        """kill -9 of the daemon and of every session under it."""
        if self.proc is None:
            return
        for pid in descendants(self.proc.pid) + [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.proc = None

    def freeze(self):
        """SIGSTOP of every session (the listener still accepts); returns their pids."""
        pids = descendants(self.proc.pid)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def thaw(self, pids):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def sshd_missing():
    for tool in (SSHD, shutil.which("ssh-keygen")):
        if not tool or not os.access(tool, os.X_OK):
            return ("OpenSSH's sshd or ssh-keygen is not installed (deps/install --test, or "
                    "apt-get install openssh-server openssh-client)")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        # sshd as root needs its privilege separation directory, which
        # Debian's tmpfiles.d makes at boot (absent in a container).
        try:
            os.makedirs("/run/sshd", 0o755, exist_ok=True)
        except OSError as e:
            return f"sshd as root needs /run/sshd, which cannot be made: {e}"
    return None


@pytest.fixture
def sshd(tmp_path_factory):
    why = sshd_missing()
    if why:
        pytest.skip(why)
    server = Sshd(str(tmp_path_factory.mktemp("sshd")))
    server.start()
    try:
        yield server
    finally:
        server.stop()
