"""The command-line entry point: dispatch, help, version, usage errors."""
import re


def test_version(run):
    r = run("version")
    assert r.returncode == 0
    assert re.fullmatch(r"v\d+\.\d+\.\d+\n", r.stdout)


def test_no_command_is_usage_error(run):
    r = run()
    assert r.returncode == 2
    assert "Usage" in r.stderr


def test_unknown_command(run):
    r = run("frobnicate")
    assert r.returncode == 2
    assert 'unknown command "frobnicate"' in r.stderr


def test_help(run):
    r = run("-h")
    assert r.returncode == 0
    assert "version" in r.stdout


def commands(run):
    out = run("-h").stdout.split("The commands are:")[1]
    return re.findall(r"^\t(\w+)\s", out, re.M)


def test_every_command_has_help(run):
    names = commands(run)
    assert "version" in names
    for name in names:
        for flag in ("-h", "--help"):
            r = run(name, flag)
            assert r.returncode == 0, (name, r.stderr)
            assert f"litestream {name}" in r.stdout


def test_every_command_rejects_unknown_flag(run):
    for name in commands(run):
        r = run(name, "-no-such-flag")
        assert r.returncode == 2, name
        assert "flag provided but not defined: -no-such-flag" in r.stderr
