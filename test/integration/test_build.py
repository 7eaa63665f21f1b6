"""The build: ./configure names the Debian package to install when a
library is missing (simulated with a pkg-config directory that lacks it)."""
import glob
import os
import shutil
import subprocess

import pytest

PC_DIRS = ["/usr/lib/x86_64-linux-gnu/pkgconfig", "/usr/lib/pkgconfig", "/usr/share/pkgconfig"]


@pytest.mark.parametrize("pc,package", [("libuv", "libuv1-dev"), ("liblz4", "liblz4-dev"),
                                        ("libcjson", "libcjson-dev")])
def test_configure_names_missing_package(tmp_path, pc, package):
    if os.environ.get("LITESTREAM_SANITIZERS") == "1":
        pytest.skip("LITESTREAM_SANITIZERS=1: configure does not depend on the build; "
                    "the gcc half of CI runs it")
    srcdir = os.environ.get("LITESTREAM_SRCDIR")
    if not srcdir or not os.path.exists(os.path.join(srcdir, "configure")):
        pytest.skip("no configure script in LITESTREAM_SRCDIR")
    fake = tmp_path / "pkgconfig"
    fake.mkdir()
    for d in PC_DIRS:
        for f in glob.glob(os.path.join(d, "*.pc")):
            if os.path.basename(f) != f"{pc}.pc" and not (fake / os.path.basename(f)).exists():
                os.symlink(f, fake / os.path.basename(f))
    # A configured source tree refuses a second build directory, so run a
    # copy of what configure needs.
    src = tmp_path / "src-copy"
    (src / "src" / "cmd").mkdir(parents=True)
    shutil.copytree(os.path.join(srcdir, "build-aux"), src / "build-aux")
    for f in ("configure", "Makefile.in", "autoconfig.h.in", "src/cmd/main.c"):
        shutil.copy2(os.path.join(srcdir, f), src / f)
    r = subprocess.run(["./configure"], cwd=src, capture_output=True, text=True,
                       env=dict(os.environ, PKG_CONFIG_LIBDIR=str(fake)), timeout=300)
    assert r.returncode != 0
    assert f"install the Debian package {package}" in r.stderr, r.stderr[-2000:]
