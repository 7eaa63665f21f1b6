#!/usr/bin/python3
"""Runs the unit tests (cmocka binaries, TAP output) and the integration
tests (pytest), prints each suite's output, then one line that counts both:

    N passed, N failed, N skipped

Exits 1 when anything failed (a crashed unit binary counts as a failure),
0 otherwise.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET


def run_unit(binary):
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    proc = subprocess.run([binary], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace")
    sys.stdout.write(proc.stdout)
    passed = failed = skipped = 0
    for line in proc.stdout.splitlines():
        # cmocka 1.1.5 writes a skipped test as "not ok N # SKIP".
        if re.match(r"^(not )?ok \d+", line) and "# SKIP" in line:
            skipped += 1
        elif re.match(r"^not ok \d+", line):
            failed += 1
        elif re.match(r"^ok \d+", line):
            passed += 1
    if proc.returncode != 0 and failed == 0:
        print(f"{os.path.basename(binary)}: exited with status {proc.returncode}")
        failed += 1
    return passed, failed, skipped


def run_pytest(directory, binary, extra):
    with tempfile.TemporaryDirectory(prefix="litestream-pytest-") as tmp:
        report = os.path.join(tmp, "report.xml")
        srcdir = os.path.dirname(os.path.dirname(os.path.abspath(directory)))
        env = dict(os.environ, LITESTREAM_BIN=binary, LITESTREAM_SRCDIR=srcdir,
                   PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", "--durations=25",
               "--rootdir", directory, "--junitxml", report, directory] + extra
        proc = subprocess.run(cmd, env=env)
        if proc.returncode == 5:  # no tests collected (a -k that matched nothing)
            return 0, 0, 0
        if not os.path.exists(report):
            print(f"pytest exited with status {proc.returncode} and wrote no report")
            return 0, 1, 0
        root = ET.parse(report).getroot()
        suites = [root] if root.tag == "testsuite" else list(root)
        total = failed = skipped = 0
        for s in suites:
            total += int(s.get("tests", 0))
            failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
            skipped += int(s.get("skipped", 0))
        if proc.returncode != 0 and failed == 0:
            failed = 1
        return total - failed - skipped, failed, skipped


def integration_passes(extra):
    """The pytest runs: with pytest-xdist, everything but the tests marked
    timing on two workers (a file's tests stay on one worker, so its
    module fixtures are built once), then the timing tests alone, so that
    their figures are not taken beside another test's load. Without xdist,
    or with LITESTREAM_TEST_JOBS=1, or when the caller picks tests (-k, -m),
    one run as before."""
    jobs = os.environ.get("LITESTREAM_TEST_JOBS", "2")
    picked = any(a.startswith(("-k", "-m", "-n")) for a in extra)
    try:
        import xdist  # noqa: F401
    except ImportError:
        xdist = None
    if xdist is None or jobs == "1" or picked:
        return [extra]
    return [["-n", jobs, "--dist", "loadfile", "-m", "not timing"] + extra,
            ["-m", "timing"] + extra]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--integration", help="the pytest directory; without it, the unit tests only")
    ap.add_argument("--pytest-arg", action="append", default=[])
    ap.add_argument("units", nargs="*")
    args = ap.parse_args()

    totals = [0, 0, 0]
    for unit in args.units:
        for i, n in enumerate(run_unit(unit)):
            totals[i] += n
    if args.integration:
        for extra in integration_passes(args.pytest_arg):
            for i, n in enumerate(run_pytest(args.integration, args.bin, extra)):
                totals[i] += n
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
