"""What ships besides the binary, checked against the code so that it cannot
drift: the man pages (clean under mandoc and groff; every command's flags,
as `litestream CMD -h` prints them, and every key of the option table in
src/config/config_options.c documented), the systemd unit (systemd-analyze
verify, and a security exposure of at most 2.0) and the Debian package:
built with dpkg-buildpackage from a copy of the tree, clean under lintian,
installed into a scratch root with `dpkg --root` (maintainer scripts run
chrootless, with DPKG_ROOT, as debhelper's snippets allow), its binary run
from there, then removed (the edited conffile stays) and purged (the
conffile and the state directory go).

The package tests build for about a minute; they skip when
LITESTREAM_SANITIZERS=1 (the clang half of CI), when the Debian tools are
missing, and, for the install, when not root (dpkg --root sets ownership)."""
import os
import re
import shutil
import subprocess

import pytest

SRCDIR = os.environ.get("LITESTREAM_SRCDIR", "")
MAN1 = os.path.join(SRCDIR, "man", "litestream.1")
MAN5 = os.path.join(SRCDIR, "man", "litestream.conf.5")
UNIT = os.path.join(SRCDIR, "packaging", "litestream.service")
OPTIONS_C = os.path.join(SRCDIR, "src", "config", "config_options.c")
EXAMPLE_CONF = os.path.join(SRCDIR, "conf", "litestream.conf")
MAX_EXPOSURE = 2.0


def need_srcdir():
    if not os.path.exists(MAN1):
        pytest.skip("LITESTREAM_SRCDIR does not point at the source tree")


def need_tool(name, package):
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (Debian package {package}; deps/install --test)")


# ---- man pages -------------------------------------------------------------

def roff_text(line):
    """A roff line as a reader sees it: no macro name, fonts, quotes or escapes."""
    line = re.sub(r"^\.\w+\s*", "", line)
    line = re.sub(r"\\f[BIRP]|\\f\(\w\w|\\&|\\%", "", line)
    return line.replace("\\-", "-").replace('"', "")


def man_blocks(path, macro):
    """{title: [lines]} of the blocks a .SH or .SS macro opens in the page."""
    blocks, title = {}, None
    with open(path) as f:
        for line in f.read().splitlines():
            if line.startswith(macro + " "):
                title = roff_text(line).strip()
                blocks[title] = []
            elif line.startswith((".SH ", ".SS ")) and title is not None and macro == ".SS":
                title = None if line.startswith(".SH ") else title
            elif title is not None:
                blocks[title].append(line)
    return blocks


def tagged_items(lines):
    """The first word of each .TP/.TQ tag line of a block: the items it describes."""
    items = []
    for prev, line in zip([""] + lines, lines):
        if prev in (".TP", ".TQ") and line.startswith("."):
            words = roff_text(line).split()
            if words:
                items.append(words[0])
    return items


def test_man_pages_lint_clean():
    need_srcdir()
    need_tool("mandoc", "mandoc")
    for page in (MAN1, MAN5):
        r = subprocess.run(["mandoc", "-T", "lint", "-W", "all", page], capture_output=True,
                           text=True)
        assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
        if shutil.which("groff"):
            r = subprocess.run(["groff", "-ww", "-z", "-man", page], capture_output=True,
                               text=True)
            assert r.returncode == 0 and r.stderr == "", r.stderr


def commands_and_flags(run):
    """{command: {flag, ...}} from `litestream -h` and each `litestream CMD -h`."""
    out = run("-h").stdout.split("The commands are:")[1]
    commands = re.findall(r"^\t(\w+)\s", out, re.M)
    assert "replicate" in commands and "version" in commands, out
    flags = {}
    for c in commands:
        r = run(c, "-h")
        assert r.returncode == 0, (c, r.stderr)
        flags[c] = set(re.findall(r"^\t-([\w-]+)", r.stdout, re.M))
    return flags


def man_flags():
    """{command: {flag, ...}} as litestream(1) documents them, one .SS per command."""
    blocks = man_blocks(MAN1, ".SS")
    return {c: {w[1:] for w in tagged_items(lines) if w.startswith("-")}
            for c, lines in blocks.items()}


def test_man_page_documents_every_command_and_flag(run):
    need_srcdir()
    documented = man_flags()
    for command, flags in commands_and_flags(run).items():
        assert command in documented, f"litestream(1) has no section for {command}"
        missing = flags - documented[command]
        assert not missing, f"litestream(1) does not document {command} {sorted(missing)}"
    synopsis = "\n".join(man_blocks(MAN1, ".SH")["SYNOPSIS"])
    for command in documented:
        assert f".B litestream {command}" in synopsis, f"{command} is not in the SYNOPSIS"


def test_man_page_documents_no_flag_that_does_not_exist(run):
    """The other way round: a documented flag the binary lacks is stale."""
    need_srcdir()
    actual = commands_and_flags(run)
    if "once" not in actual["replicate"]:
        pytest.skip("this binary predates replicate -once and the other issue-13 flags")
    for command, flags in man_flags().items():
        stale = flags - actual.get(command, set())
        assert not stale, f"litestream(1) documents {command} {sorted(stale)}, which do not exist"


def option_table():
    """{(section, key), ...} and the s3-only keys, from config_options.c's options[]."""
    with open(OPTIONS_C) as f:
        src = f.read()
    kinds = {"L": "litestream", "D": "db", "R": "replica"}
    rows = re.findall(r'^\s*([LDR])_OPT\("([\w-]+)",[^\n]*\)', src, re.M)
    assert len(rows) > 20, "no option table found in config_options.c"
    keys = {(kinds[k], name) for k, name in rows}
    s3_only = set(re.findall(r'^\s*R_OPT\("([\w-]+)",[^\n]*OPT_S3\)', src, re.M))
    abs_only = set(re.findall(r'^\s*R_OPT\("([\w-]+)",[^\n]*OPT_ABS\)', src, re.M))
    sftp_only = set(re.findall(r'^\s*R_OPT\("([\w-]+)",[^\n]*OPT_SFTP\)', src, re.M))
    return keys, s3_only, abs_only, sftp_only


def conf_page_keys():
    """{(section, key), ...} of litestream.conf(5), and those of its s3, abs and sftp subsections."""
    keys, s3, abs_, sftp = set(), set(), set(), set()
    for title, lines in man_blocks(MAN5, ".SS").items():
        m = re.match(r"\[(litestream|db|replica)\b", title)
        if m:
            items = set(tagged_items(lines))
            keys |= {(m.group(1), k) for k in items}
            if "type s3" in title:
                s3 |= items
            if "type abs" in title:
                abs_ |= items
            if "type sftp" in title:
                sftp |= items
    return keys, s3, abs_, sftp


def test_conf_page_documents_every_key():
    need_srcdir()
    table, s3_only, abs_only, sftp_only = option_table()
    documented, documented_s3, documented_abs, documented_sftp = conf_page_keys()
    missing = sorted(f"[{s}] {k}" for s, k in table - documented)
    assert not missing, f"litestream.conf(5) does not document {missing}"
    assert s3_only and s3_only <= documented_s3, sorted(s3_only - documented_s3)
    assert abs_only and abs_only <= documented_abs, sorted(abs_only - documented_abs)
    assert sftp_only and sftp_only <= documented_sftp, sorted(sftp_only - documented_sftp)
    # Both directions once the table has issue 13's keys (the page has them first).
    if ("litestream", "log-format") in table:
        stale = sorted(f"[{s}] {k}" for s, k in documented - table)
        assert not stale, f"litestream.conf(5) documents keys that do not exist: {stale}"


# ---- the systemd unit ------------------------------------------------------

def unit_settings(path=UNIT):
    settings = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith(("#", ";", "[")):
                k, v = line.rstrip("\n").split("=", 1)
                settings.setdefault(k, []).append(v)
    return settings


def man_dir(tmp_path):
    """A MANPATH holding the two pages under their sections."""
    root = tmp_path / "man"
    for page, sec in ((MAN1, "man1"), (MAN5, "man5")):
        (root / sec).mkdir(parents=True, exist_ok=True)
        shutil.copy(page, root / sec)
    return root


def test_unit_verifies(tmp_path, litestream_bin):
    """systemd-analyze verify: syntax, the binary executable, both man pages
    (Documentation=) found. ExecStart points at the binary under test."""
    need_srcdir()
    need_tool("systemd-analyze", "systemd")
    unit = tmp_path / "litestream.service"
    with open(UNIT) as f:
        text = f.read()
    assert "ExecStart=/usr/bin/litestream replicate -config /etc/litestream.conf\n" in text
    unit.write_text(text.replace("ExecStart=/usr/bin/litestream", f"ExecStart={litestream_bin}"))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                       env=dict(os.environ, MANPATH=str(man_dir(tmp_path))), timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def exposure(unit_path):
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        str(unit_path)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1)), r.stdout


def test_unit_security_exposure(tmp_path):
    need_srcdir()
    need_tool("systemd-analyze", "systemd")
    score, report = exposure(UNIT)
    print(f"systemd-analyze security: {score}")
    assert score <= MAX_EXPOSURE, report
    # The measure measures: the same unit without its hardening rates worse.
    bare = tmp_path / "litestream.service"
    with open(UNIT) as f:
        head = f.read().split("\n# Hardening.")[0]
    bare.write_text(head + "\n[Install]\nWantedBy=multi-user.target\n")
    assert exposure(bare)[0] > 5.0


def test_unit_settings_match_the_daemon_and_example_config():
    need_srcdir()
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["User"] == ["litestream"]
    assert s["Restart"] == ["on-failure"]
    # TimeoutStopSec above shutdown-sync-timeout's default, 30s.
    assert int(s["TimeoutStopSec"][0].rstrip("s")) > 30
    # The example configuration's database and file replica directories are
    # writable in the unit, or the packaged pair does not work together.
    writable = {p.lstrip("-") for v in s["ReadWritePaths"] for p in v.split()}
    section, needed = None, []
    with open(EXAMPLE_CONF) as f:
        for line in f:
            if line.startswith("["):
                section = line.strip()
            elif re.match(r"path\s*=", line) and section:
                path = line.split("=", 1)[1].strip()
                needed.append(os.path.dirname(path) if section.startswith("[db") else path)
    assert len(needed) >= 2 and set(needed) <= writable, (needed, writable)


# ---- the Debian package ----------------------------------------------------

def source_files(srcdir):
    """The tree's files as git knows them (tracked or new, not ignored: no
    build products) that exist; skips when git cannot list them."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the copy of the tree to build is made with git")
    r = subprocess.run(["git", "-C", srcdir, "ls-files", "-z", "-c", "-o", "--exclude-standard"],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"git cannot list the tree's files: {r.stderr.decode().strip()}")
    return [p for p in r.stdout.decode().split("\0") if p and os.path.isfile(os.path.join(srcdir, p))]


def clean_env():
    """The environment without what make check passes down (jobserver, flags)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CC", "CFLAGS",
                        "LDFLAGS", "CPPFLAGS", "DESTDIR")}
    env["DEB_BUILD_OPTIONS"] = "nocheck noautodbgsym parallel=2"  # make check runs the unit tests
    return env


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """Builds the .deb out of a copy of the tree; returns (build directory, .deb path)."""
    if os.environ.get("LITESTREAM_SANITIZERS") == "1":
        pytest.skip("LITESTREAM_SANITIZERS=1: the package is built in the gcc half only")
    need_srcdir()
    need_tool("dpkg-buildpackage", "dpkg-dev")
    need_tool("dh", "debhelper")
    files = source_files(SRCDIR)
    top = tmp_path_factory.mktemp("deb")
    tree = top / "litestream"
    for p in files:
        dst = tree / p
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(SRCDIR, p), dst, follow_symlinks=False)
    r = subprocess.run(["nice", "-n", "10", "dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree,
                       env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:]
    with open(tree / "debian" / "changelog") as f:
        version = re.match(r"litestream \(([^)]+)\)", f.readline()).group(1)
    return top, next(top.glob(f"litestream_{version}_*.deb")), version


def test_deb_contents(deb, tmp_path):
    top, path, version = deb
    with open(os.path.join(SRCDIR, "configure.ac")) as f:
        assert f"AC_INIT([litestream], [{version}]" in f.read(), \
            "debian/changelog's version is not configure.ac's"
    listing = subprocess.run(["dpkg-deb", "-c", str(path)], capture_output=True, text=True,
                             check=True).stdout
    files = set(re.findall(r"\s\.(/\S+)$", listing, re.M))
    for f in ("/usr/bin/litestream", "/etc/litestream.conf",
              "/lib/systemd/system/litestream.service", "/usr/lib/sysusers.d/litestream.conf",
              "/usr/share/man/man1/litestream.1.gz", "/usr/share/man/man5/litestream.conf.5.gz",
              "/usr/share/doc/litestream/copyright"):
        assert f in files, sorted(files)
    x = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", str(path), str(x)], check=True)
    ctl = tmp_path / "ctl"
    subprocess.run(["dpkg-deb", "-e", str(path), str(ctl)], check=True)
    assert (ctl / "conffiles").read_text().split() == ["/etc/litestream.conf"]
    with open(UNIT) as f:
        assert (x / "lib/systemd/system/litestream.service").read_text() == f.read()
    assert "u litestream " in (x / "usr/lib/sysusers.d/litestream.conf").read_text()
    # The packaged configuration: the example, with the socket where the unit
    # lets the user litestream create it.
    with open(EXAMPLE_CONF) as f:
        example = f.read().splitlines()
    default = ";socket = /var/run/litestream.sock"
    assert default in example
    i = example.index(default)
    expected = example[:i] + ["; Under systemd (litestream.service), in its RuntimeDirectory=:",
                              "socket = /run/litestream/litestream.sock"] + example[i + 1:]
    assert (x / "etc/litestream.conf").read_text().splitlines() == expected
    assert unit_settings(x / "lib/systemd/system/litestream.service")["RuntimeDirectory"] == \
        ["litestream"]


def test_deb_lintian_clean(deb):
    need_tool("lintian", "lintian")
    top, path, version = deb
    changes = next(top.glob(f"litestream_{version}_*.changes"))
    r = subprocess.run(["lintian", "--pedantic", "-I", str(changes)], capture_output=True,
                       text=True, timeout=300)
    print(r.stdout)
    bad = [l for l in r.stdout.splitlines() if l.startswith(("E:", "W:"))]
    assert not bad, r.stdout


def dpkg_root(root, *args):
    """dpkg on the scratch root, maintainer scripts run on the host with
    DPKG_ROOT set; the host's packages and dpkg log are left alone. Every
    path is installed, whatever a container image's dpkg.cfg.d excludes
    (man pages, docs)."""
    return subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless",
                           "--force-depends", "--log=/dev/null", "--path-include=*", *args],
                          capture_output=True, text=True, timeout=120)


def host_state():
    d = "/var/lib/systemd/deb-systemd-helper-enabled"
    names = sorted(os.listdir(d)) if os.path.isdir(d) else []
    with open("/etc/passwd") as f:
        return names, f.read()


def test_deb_installs_runs_removes_and_purges(deb, tmp_path):
    top, path, version = deb
    if os.geteuid() != 0:
        pytest.skip("dpkg --root needs root to set the files' owners")
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").write_text("")
    (root / "etc").mkdir()
    before = host_state()

    r = dpkg_root(root, "-i", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    passwd = (root / "etc/passwd").read_text()
    assert re.search(r"^litestream:x:\d+:\d+:[^:]*:/var/lib/litestream:/usr/sbin/nologin$",
                     passwd, re.M), passwd
    assert re.search(r"^litestream:x:\d+:", (root / "etc/group").read_text(), re.M)
    binary = root / "usr/bin/litestream"
    r = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == f"v{version}\n", r.stdout + r.stderr
    # The packaged configuration loads, and names the example database.
    r = subprocess.run([str(binary), "databases", "-config", str(root / "etc/litestream.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "/var/lib/app/app.db" in r.stdout, r.stdout + r.stderr
    # The installed unit, man pages and binary verify together.
    if shutil.which("systemd-analyze"):
        unit = tmp_path / "litestream.service"
        unit.write_text((root / "lib/systemd/system/litestream.service").read_text()
                        .replace("ExecStart=/usr/bin/litestream", f"ExecStart={binary}"))
        r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                           text=True, env=dict(os.environ, MANPATH=str(root / "usr/share/man")),
                           timeout=60)
        assert r.returncode == 0 and r.stderr == "", r.stderr

    # What the service would have made, and an administrator's edit.
    state = root / "var/lib/litestream/.aws"
    state.mkdir(parents=True)
    (state / "credentials").write_text("[default]\n")
    conf = root / "etc/litestream.conf"
    conf.write_text(conf.read_text() + "; edited by the administrator\n")

    r = dpkg_root(root, "-r", "litestream")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not binary.exists()
    assert conf.read_text().endswith("; edited by the administrator\n"), "remove lost the config"
    assert (state / "credentials").exists()
    r = subprocess.run(["dpkg-query", f"--root={root}", "-W", "-f=${Status}", "litestream"],
                       capture_output=True, text=True)
    assert r.stdout == "deinstall ok config-files", r.stdout + r.stderr

    r = dpkg_root(root, "-P", "litestream")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not conf.exists(), "purge left /etc/litestream.conf"
    assert not (root / "var/lib/litestream").exists(), "purge left the state directory"
    assert host_state() == before, "the maintainer scripts touched the host"
