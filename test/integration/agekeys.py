"""Helpers for the age tests: keys from age-keygen, encrypting and
decrypting with the `age` tool (Debian's age package, filippo.io/age), and
the replicas' objects."""
import os
import shutil
import subprocess

import pytest

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
LZ4 = shutil.which("lz4")
AGE_MAGIC = b"age-encryption.org/v1\n"
LZ4_MAGIC = b"\x04\x22\x4d\x18"


def need_tools():
    if AGE is None or AGE_KEYGEN is None:
        pytest.skip("the age tool is missing (apt-get install age; deps/install --test)")
    if LZ4 is None:
        pytest.skip("the lz4 command is missing (apt-get install lz4)")


class Key:
    """One X25519 key pair: the identity file (mode 0600), its text, the recipient."""

    def __init__(self, directory, name):
        self.path = directory / f"{name}.txt"
        subprocess.run([AGE_KEYGEN, "-o", str(self.path)], check=True, capture_output=True)
        os.chmod(self.path, 0o600)
        text = self.path.read_text()
        self.secret = next(l for l in text.splitlines() if l.startswith("AGE-SECRET-KEY-1"))
        self.recipient = subprocess.run([AGE_KEYGEN, "-y", str(self.path)], check=True,
                                        capture_output=True, text=True).stdout.strip()


def age_decrypt(path, key):
    """The plaintext of the age file at path, or AssertionError with age's message."""
    r = subprocess.run([AGE, "-d", "-i", str(key.path), str(path)], capture_output=True, timeout=60)
    assert r.returncode == 0, f"age -d {path}: {r.stderr.decode(errors='replace')}"
    return r.stdout


def age_encrypt_in_place(path, *recipients):
    args = [AGE]
    for rcp in recipients:
        args += ["-r", rcp]
    data = subprocess.run(args + [str(path)], check=True, capture_output=True, timeout=60).stdout
    path.write_bytes(data)


def lz4_decode(data):
    r = subprocess.run([LZ4, "-d", "-c"], input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, f"not a valid lz4 frame: {r.stderr.decode(errors='replace')}"
    return r.stdout


def objects(root):
    """Every object file under a file replica's root, sorted (not the
    backend's temporary files, which come and go)."""
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if not f.endswith(".tmp")]
    return sorted(out)


def stat_all(root):
    """{path: (size, mtime_ns, inode)}: a rewritten object changes all three."""
    out = {}
    for p in objects(root):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        out[p] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out
