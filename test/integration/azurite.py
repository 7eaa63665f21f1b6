"""Azurite, Microsoft's Azure Storage emulator (npm package `azurite`,
installed by deps/install --test), for the abs tests: its blob service on
a free port on 127.0.0.1, its data in a temporary directory, the
emulator's well-known account devstoreaccount1.

The module-scoped fixture `azurite` starts one for a test module (node
takes seconds to start it) and stops it after; tests give themselves a
container each. A test that stops and restarts it (a fault) calls .stop()
and .start(), which keep the same port and data. Azurite not installed: the test is skipped,
saying how to install it. It does not come up: the test fails with its log.

A small Azure client of its own (Shared Key signed here in Python, written
from Azure's documentation, so it checks the C signer rather than sharing
its mistakes) creates containers and lists and reads blobs, to see what
litestream stored.
"""
import base64
import email.utils
import hashlib
import hmac
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest

ACCOUNT = "devstoreaccount1"
# The emulator's published key (Azurite's documentation), not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
VERSION = "2021-08-06"


def azurite_binary():
    for cand in (os.environ.get("LITESTREAM_AZURITE"), shutil.which("azurite-blob"),
                 shutil.which("azurite")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    def __init__(self, binary, data_dir, port=None):
        self.binary = binary
        self.dir = data_dir
        self.port = port or free_port()
        self.proc = None
        self.log_path = os.path.join(data_dir, "azurite.log")
        self.endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        self.account, self.key = ACCOUNT, KEY

    def start(self, timeout=30):
        args = [self.binary]
        if os.path.basename(self.binary) == "azurite":
            args += ["--queuePort", "0", "--tablePort", "0"]
        args += ["--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                 "--location", os.path.join(self.dir, "data"), "--disableTelemetry"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        with open(self.log_path, errors="replace") as f:
            pytest.fail(f"Azurite did not come up on port {self.port}:\n{f.read()[-4000:]}")

    def stop(self):
        """SIGTERM: Azurite saves its metadata (containers) only on a clean
        exit; after a kill -9 it comes back without them."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    # ---- a client of its own ----

    def request(self, method, path, query=None, body=b"", headers=None, key=None):
        """One signed request to /ACCOUNT/PATH; returns (status, headers, body)."""
        query = query or {}
        headers = dict(headers or {})
        headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
        headers["x-ms-version"] = VERSION
        epath = "/" + ACCOUNT + "/" + urllib.parse.quote(path.lstrip("/"), safe="/")
        std = ["Content-Encoding", "Content-Language", "Content-Length", "Content-MD5",
               "Content-Type", "Date", "If-Modified-Since", "If-Match", "If-None-Match",
               "If-Unmodified-Since", "Range"]
        lower = {k.lower(): v for k, v in headers.items()}
        if body:
            lower["content-length"] = str(len(body))
        sts = method + "\n" + "".join(lower.get(h.lower(), "") + "\n" for h in std)
        sts += "".join(f"{k}:{lower[k]}\n" for k in sorted(lower) if k.startswith("x-ms-"))
        sts += f"/{ACCOUNT}{epath}"
        sts += "".join(f"\n{k.lower()}:{query[k]}" for k in sorted(query, key=str.lower))
        sig = base64.b64encode(hmac.new(base64.b64decode(key or self.key), sts.encode(),
                                        hashlib.sha256).digest()).decode()
        headers["Authorization"] = f"SharedKey {ACCOUNT}:{sig}"
        url = f"http://127.0.0.1:{self.port}{epath}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, data=body or None, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def create_container(self, name):
        status, _, body = self.request("PUT", name, {"restype": "container"})
        assert status == 201, f"create container {name}: {status} {body[:300]!r}"

    def list_blobs(self, container, prefix=""):
        """{name: size} of every blob under prefix, all pages."""
        out, marker = {}, ""
        while True:
            q = {"restype": "container", "comp": "list", "prefix": prefix}
            if marker:
                q["marker"] = marker
            status, _, body = self.request("GET", container, q)
            assert status == 200, f"list {container}: {status} {body[:300]!r}"
            root = ET.fromstring(body)
            for b in root.iter("Blob"):
                out[b.findtext("Name")] = int(b.findtext("Properties/Content-Length"))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return out

    def block_list(self, container, name):
        """The committed block IDs of a blob."""
        status, _, body = self.request("GET", f"{container}/{name}",
                                       {"comp": "blocklist", "blocklisttype": "committed"})
        assert status == 200, f"block list {name}: {status} {body[:300]!r}"
        return [b.findtext("Name") for b in ET.fromstring(body).iter("Block")]


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    binary = azurite_binary()
    if binary is None:
        pytest.skip("Azurite is not installed (deps/install --test, or npm install -g azurite; "
                    "LITESTREAM_AZURITE names another azurite-blob)")
    d = tmp_path_factory.mktemp("azurite")
    server = Azurite(binary, str(d))
    server.start()
    try:
        yield server
    finally:
        server.stop()
