"""`litestream databases|generations|snapshots|wal`: replicas written by the
real binary (two replicas, two generations), listed by the real binary, and
every column and -json field checked against the files on disk (names,
os.stat sizes and modification times), through a configured DB_PATH and
through a REPLICA_URL; then the error cases and their exit codes."""
import json
import os
import re
import shutil
import sqlite3
import time
from datetime import datetime, timezone

import pytest

from lsutil import Replicator, start_writers, wait_for, wait_writers

GEN_RE = re.compile(r"[0-9a-f]{16}")
SNAPSHOT_RE = re.compile(r"([0-9a-f]{8})\.snapshot\.lz4")
SEGMENT_RE = re.compile(r"([0-9a-f]{8})_([0-9a-f]{8,})\.wal\.lz4")
ZERO_TIME = "0001-01-01T00:00:00Z"

# --- what Litestream 0.3.13 prints, written again here to check the binary ---

S = 10**9


def tabwriter(rows):
    """text/tabwriter (0, 8, 2, ' ', 0) for rows of equal length: every
    column but the last padded to its widest cell plus two spaces."""
    widths = [max(len(r[j]) for r in rows) + 2 for j in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] + "\n" for r in rows)


def go_duration(ns):
    """Go's Duration.String()."""
    if ns == 0:
        return "0s"
    neg, u = ns < 0, abs(ns)

    def frac(v, prec):
        digits = f"{v % 10**prec:0{prec}d}".rstrip("0") if prec else ""
        return (f".{digits}" if digits else ""), v // 10**prec

    if u < S:
        unit, prec = ("ns", 0) if u < 10**3 else ("µs", 3) if u < 10**6 else ("ms", 6)
        f, whole = frac(u, prec)
        out = f"{whole}{f}{unit}"
    else:
        f, secs = frac(u, 9)
        out = f"{secs % 60}{f}s"
        mins = secs // 60
        if mins:
            out = f"{mins % 60}m" + out
            if mins // 60:
                out = f"{mins // 60}h" + out
    return "-" + out if neg else out


def truncate_lag(ns):
    """Litestream 0.3.13's truncateDuration (Go's Truncate goes toward zero)."""
    a = abs(ns)
    for limit, step in ((10 * S, S), (S, S // 10), (10**6, 10**6), (10**3, 10**3)):
        if a > limit:
            t = a - a % step
            return -t if ns < 0 else t
    return ns


def parse_go_duration(s):
    m = re.fullmatch(r"(-?)(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)(ns|µs|ms|s))?", s)
    assert m, f"not a Go duration: {s!r}"
    sign, h, mi, num, unit = m.groups()
    ns = (int(h or 0) * 3600 + int(mi or 0) * 60) * S
    if num:
        ns += round(float(num) * {"ns": 1, "µs": 10**3, "ms": 10**6, "s": S}[unit])
    return -ns if sign else ns


def rfc3339(ms):
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def mtime_ms(path):
    # What the listing reads: modification time, floored to milliseconds.
    return os.stat(path).st_mtime_ns // 10**6


def on_disk(root):
    """{generation: {"snapshots": [...], "wal": [...]}} from the replica's files."""
    out = {}
    gdir = os.path.join(root, "generations")
    for gen in sorted(os.listdir(gdir)):
        if not GEN_RE.fullmatch(gen):
            continue
        snaps, segs = [], []
        sdir, wdir = os.path.join(gdir, gen, "snapshots"), os.path.join(gdir, gen, "wal")
        for name in os.listdir(sdir) if os.path.isdir(sdir) else []:
            m = SNAPSHOT_RE.fullmatch(name)
            if m:
                p = os.path.join(sdir, name)
                snaps.append({"index": int(m[1], 16), "size": os.stat(p).st_size,
                              "created_ms": mtime_ms(p)})
        for name in os.listdir(wdir) if os.path.isdir(wdir) else []:
            m = SEGMENT_RE.fullmatch(name)
            if m:
                p = os.path.join(wdir, name)
                segs.append({"index": int(m[1], 16), "offset": int(m[2], 16),
                             "size": os.stat(p).st_size, "created_ms": mtime_ms(p)})
        snaps.sort(key=lambda s: s["index"])
        segs.sort(key=lambda s: (s["index"], s["offset"]))
        out[gen] = {"snapshots": snaps, "wal": segs}
    return out


def db_updated_ns(db):
    """The later of the database's and its WAL's modification times."""
    t = os.stat(db).st_mtime_ns
    wal = f"{db}-wal"
    if os.path.exists(wal):
        t = max(t, os.stat(wal).st_mtime_ns)
    return t


def expected_snapshots(replicas):
    """replicas: [(name, root)] -> JSON objects in listing order."""
    out = []
    for name, root in replicas:
        for gen, c in on_disk(root).items():
            for s in c["snapshots"]:
                out.append({"replica": name, "generation": gen, "index": s["index"],
                            "size": s["size"], "created": rfc3339(s["created_ms"]),
                            "created_ms": s["created_ms"]})
    return out


def expected_wal(replicas, generation=None):
    out = []
    for name, root in replicas:
        for gen, c in on_disk(root).items():
            if generation and gen != generation:
                continue
            for s in c["wal"]:
                out.append({"replica": name, "generation": gen, "index": s["index"],
                            "offset": s["offset"], "size": s["size"],
                            "created": rfc3339(s["created_ms"]), "created_ms": s["created_ms"]})
    return out


def generation_bounds(c):
    times = [o["created_ms"] for o in c["snapshots"] + c["wal"]]
    return (min(times), max(times)) if times else None


def expected_generations(replicas, ref_ns):
    out = []
    for name, root in replicas:
        for gen, c in on_disk(root).items():
            b = generation_bounds(c)
            if b is None:
                out.append({"name": name, "generation": gen, "lag": None, "lag_ms": None,
                            "start": None, "start_ms": None, "end": None, "end_ms": None})
                continue
            lag = ref_ns - b[1] * 10**6
            lag_ms = abs(lag) // 10**6 * (-1 if lag < 0 else 1)
            out.append({"name": name, "generation": gen, "lag": go_duration(truncate_lag(lag)),
                        "lag_ms": lag_ms, "start": rfc3339(b[0]), "start_ms": b[0],
                        "end": rfc3339(b[1]), "end_ms": b[1]})
    return out


def snapshot_rows(objs):
    return [["replica", "generation", "index", "size", "created"]] + [
        [o["replica"], o["generation"], str(o["index"]), str(o["size"]), o["created"]]
        for o in objs]


def wal_rows(objs):
    return [["replica", "generation", "index", "offset", "size", "created"]] + [
        [o["replica"], o["generation"], str(o["index"]), str(o["offset"]), str(o["size"]),
         o["created"]] for o in objs]


def generation_rows(objs):
    return [["name", "generation", "lag", "start", "end"]] + [
        [o["name"], o["generation"], o["lag"] or "2562047h47m16s", o["start"] or ZERO_TIME,
         o["end"] or ZERO_TIME] for o in objs]


# --- one replicated database with two replicas and two generations ---

def make_db(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER, payload BLOB)")
    conn.close()


def generations_in(root):
    gdir = os.path.join(root, "generations")
    return sorted(g for g in os.listdir(gdir) if GEN_RE.fullmatch(g)) if os.path.isdir(gdir) else []


@pytest.fixture(scope="module")
def site(litestream_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("listing")
    db, other = tmp / "app.db", tmp / "other.db"
    one, two = tmp / "r" / "one", tmp / "r" / "two"
    make_db(db)
    conf = tmp / "litestream.conf"
    conf.write_text(f"""
[db app]
path = {db}

[db other]
path = {other}

[replica one]
db = app
url = file://{one}

[replica two]
db = app
type = file
path = {two}
""")
    # First generation.
    rep = Replicator(litestream_bin, ["-config", conf], tmp / "log1")
    wait_writers(start_writers(db, [["--seed", 21, "--count", 300, "--big-every", 100]]))
    assert rep.stop() == 0, rep.text()
    assert len(generations_in(one)) == 1 and len(generations_in(two)) == 1
    # While litestream is down the application checkpoints and truncates the
    # WAL and writes on: litestream cannot prove continuity and starts anew.
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("INSERT INTO t (writer, n) VALUES (0, 0)")
    conn.close()
    rep = Replicator(litestream_bin, ["-config", conf], tmp / "log2")
    wait_for(lambda: len(generations_in(one)) == 2 and len(generations_in(two)) == 2,
             what="a second generation")
    wait_writers(start_writers(db, [["--seed", 22, "--count", 200]]))
    assert rep.stop() == 0, rep.text()
    return {"tmp": tmp, "db": db, "other": other, "one": one, "two": two, "conf": conf}


def ok(run, *args, **kw):
    r = run(*args, **kw)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    assert r.stderr == ""
    return r.stdout


def ok_json(run, *args, **kw):
    return json.loads(ok(run, *args, **kw))


def both(site):
    return [("one", site["one"]), ("two", site["two"])]


# --- databases ---

def test_databases(run, site):
    out = ok(run, "databases", "-config", site["conf"])
    assert out == tabwriter([["path", "replicas"], [str(site["db"]), "one,two"],
                             [str(site["other"]), ""]])
    assert ok_json(run, "databases", "-config", site["conf"], "-json") == [
        {"path": str(site["db"]), "replicas": ["one", "two"]},
        {"path": str(site["other"]), "replicas": []},
    ]


def test_databases_from_environment(run, site):
    env = dict(os.environ, LITESTREAM_CONFIG=str(site["conf"]))
    assert str(site["db"]) in ok(run, "databases", env=env)


# --- snapshots ---

def test_snapshots_db_path(run, site):
    want = expected_snapshots(both(site))
    assert len({o["generation"] for o in want}) == 2 and len(want) >= 4
    out = ok(run, "snapshots", "-config", site["conf"], site["db"])
    assert out == tabwriter(snapshot_rows(want))
    assert ok_json(run, "snapshots", "-config", site["conf"], "-json", site["db"]) == want


def test_snapshots_one_replica(run, site):
    want = expected_snapshots([("two", site["two"])])
    out = ok(run, "snapshots", "-config", site["conf"], "-replica", "two", site["db"])
    assert out == tabwriter(snapshot_rows(want))


def test_snapshots_relative_db_path(run, site):
    want = expected_snapshots(both(site))
    out = ok(run, "snapshots", "-config", site["conf"], "app.db", cwd=site["tmp"])
    assert out == tabwriter(snapshot_rows(want))


def test_snapshots_replica_url(run, site):
    want = expected_snapshots([("file", site["one"])])
    out = ok(run, "snapshots", f"file://{site['one']}")
    assert out == tabwriter(snapshot_rows(want))
    assert ok_json(run, "snapshots", "-json", f"file://{site['one']}") == want


# --- wal ---

def test_wal_db_path(run, site):
    want = expected_wal(both(site))
    assert len({o["generation"] for o in want}) == 2
    out = ok(run, "wal", "-config", site["conf"], site["db"])
    assert out == tabwriter(wal_rows(want))
    assert ok_json(run, "wal", "-config", site["conf"], "-json", site["db"]) == want
    # Every segment file is listed, with its offset in decimal.
    files = sum(len(c["wal"]) for _, root in both(site) for c in on_disk(root).values())
    assert len(want) == files
    assert any(o["offset"] > 0 for o in want)


def test_wal_one_generation(run, site):
    gen = generations_in(site["one"])[-1]
    want = expected_wal(both(site), generation=gen)
    assert want and all(o["generation"] == gen for o in want)
    out = ok(run, "wal", "-config", site["conf"], "-generation", gen, site["db"])
    assert out == tabwriter(wal_rows(want))


def test_wal_replica_url(run, site):
    want = expected_wal([("file", site["two"])])
    out = ok(run, "wal", site["two"].as_uri())
    assert out == tabwriter(wal_rows(want))
    assert ok_json(run, "wal", "-json", site["two"].as_uri()) == want


# --- generations ---

def test_generations_db_path(run, site):
    # The database does not change while this runs, so the lag is exact.
    want = expected_generations(both(site), db_updated_ns(site["db"]))
    assert [o["generation"] for o in want[:2]] == generations_in(site["one"])
    out = ok(run, "generations", "-config", site["conf"], site["db"])
    assert out == tabwriter(generation_rows(want))
    assert ok_json(run, "generations", "-json", "-config", site["conf"], site["db"]) == want
    # The older generation (names are random: order by time) ended before
    # the newer began, and lags further behind.
    g1, g2 = sorted(want[:2], key=lambda o: o["start_ms"])
    assert g1["end_ms"] <= g2["start_ms"]
    assert g1["lag_ms"] > g2["lag_ms"]


def test_generations_one_replica(run, site):
    want = expected_generations([("one", site["one"])], db_updated_ns(site["db"]))
    out = ok(run, "generations", "-config", site["conf"], "-replica", "one", site["db"])
    assert out == tabwriter(generation_rows(want))


def test_generations_replica_url(run, site):
    # Without a database the lag is measured from now.
    url = f"file://{site['one']}"
    before = time.time_ns()
    out = ok(run, "generations", url)
    objs = ok_json(run, "generations", "-json", url)
    after = time.time_ns()
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["name", "generation", "lag", "start", "end"]
    want = expected_generations([("file", site["one"])], before)
    assert len(rows) == len(want) + 1 and len(objs) == len(want)
    for row, obj, w in zip(rows[1:], objs, want):
        assert [row[0], row[1], row[3], row[4]] == ["file", w["generation"], w["start"], w["end"]]
        assert {k: obj[k] for k in obj if not k.startswith("lag")} == \
            {k: w[k] for k in w if not k.startswith("lag")}
        end_ns = w["end_ms"] * 10**6
        for lag in (row[2], obj["lag"]):
            assert go_duration(parse_go_duration(lag)) == lag
            assert truncate_lag(before - end_ns) <= parse_go_duration(lag) <= \
                truncate_lag(after - end_ns)
        assert (before - end_ns) // 10**6 <= obj["lag_ms"] <= (after - end_ns) // 10**6


def test_generations_empty_generation(run, site, tmp_path):
    # A generation directory with nothing in it prints as Litestream prints
    # Go's zero time and the largest Duration; JSON says null.
    root = tmp_path / "copy"
    shutil.copytree(site["one"], root)
    os.makedirs(root / "generations" / "00000000000000aa")
    before = time.time_ns()
    out = ok(run, "generations", f"file://{root}")
    line = out.splitlines()[1].split()
    assert line == ["file", "00000000000000aa", "2562047h47m16s", ZERO_TIME, ZERO_TIME]
    objs = ok_json(run, "generations", "-json", f"file://{root}")
    assert objs[0] == {"name": "file", "generation": "00000000000000aa", "lag": None,
                       "lag_ms": None, "start": None, "start_ms": None, "end": None,
                       "end_ms": None}
    assert len(objs) == 3 and objs[1]["end_ms"] * 10**6 <= before


def test_empty_replica_lists_header_only(run, site, tmp_path):
    for cmd, header in [("generations", "name  generation  lag  start  end\n"),
                        ("snapshots", "replica  generation  index  size  created\n"),
                        ("wal", "replica  generation  index  offset  size  created\n")]:
        assert ok(run, cmd, f"file://{tmp_path}/none") == header
        assert ok_json(run, cmd, "-json", f"file://{tmp_path}/none") == []
    # A database without replicas is no error either.
    assert ok(run, "snapshots", "-config", site["conf"], site["other"]) == \
        "replica  generation  index  size  created\n"


# --- errors ---

@pytest.mark.parametrize("cmd", ["generations", "snapshots", "wal"])
def test_unknown_database(run, site, cmd):
    r = run(cmd, "-config", site["conf"], site["tmp"] / "nope.db")
    assert r.returncode == 1 and r.stdout == ""
    assert f"database not found in config: {site['tmp'] / 'nope.db'}" in r.stderr


@pytest.mark.parametrize("cmd", ["generations", "snapshots", "wal"])
def test_unknown_replica(run, site, cmd):
    r = run(cmd, "-config", site["conf"], "-replica", "three", site["db"])
    assert r.returncode == 1 and r.stdout == ""
    assert '"three"' in r.stderr and str(site["db"]) in r.stderr


@pytest.mark.parametrize("cmd", ["generations", "snapshots", "wal"])
def test_bad_replica_urls(run, site, tmp_path, cmd):
    (tmp_path / "plain").write_text("not a directory")
    for url, what in [("s3://bucket/db?bogus=1", "bogus"),
                      ("s3://user:hunter2pw@bucket/db", "user information"),
                      (f"file://{tmp_path}/plain", "plain")]:
        r = run(cmd, url)
        assert r.returncode == 1, (url, r.stderr)
        assert r.stdout == "" and what in r.stderr and f"litestream {cmd}:" in r.stderr
        assert "hunter2pw" not in r.stderr


def test_unreachable_s3_replica(run):
    # Nothing listens on port 1: the backend gives up after its retries.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    r = run("snapshots", "s3://bucket/db?endpoint=http://127.0.0.1:1", env=env, timeout=300)
    assert r.returncode == 1 and r.stdout == ""
    assert "litestream snapshots: replica s3:" in r.stderr and "127.0.0.1" in r.stderr


def test_missing_config(run, tmp_path):
    for args in (["databases"], ["snapshots", tmp_path / "app.db"]):
        r = run(*args[:1], "-config", tmp_path / "nope.conf", *args[1:])
        assert r.returncode == 1 and "nope.conf" in r.stderr


def test_one_failing_replica_still_lists_the_others(run, site, tmp_path):
    (tmp_path / "plain").write_text("x")
    conf = tmp_path / "c.conf"
    conf.write_text(f"""
[db app]
path = {site['db']}

[replica bad]
db = app
type = file
path = {tmp_path}/plain

[replica one]
db = app
url = file://{site['one']}
""")
    r = run("snapshots", "-config", conf, site["db"])
    assert r.returncode == 1 and "replica bad" in r.stderr
    assert r.stdout == tabwriter(snapshot_rows(expected_snapshots([("one", site["one"])])))


@pytest.mark.parametrize("args", [
    ["generations"], ["snapshots"], ["wal"],
    ["snapshots", "a.db", "b.db"],
    ["databases", "extra"],
    ["wal", "-bogus", "a.db"],
    ["wal", "-generation", "XYZ", "a.db"],
    ["generations", "-generation", "0000000000000000", "a.db"],
    ["snapshots", "-config", "/etc/x.conf", "file:///tmp/r"],
])
def test_usage_errors(run, args):
    r = run(*args)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and r.stderr != ""


@pytest.mark.parametrize("cmd", ["databases", "generations", "snapshots", "wal"])
def test_help(run, cmd):
    r = run(cmd, "-h")
    assert r.returncode == 0
    assert f"litestream {cmd} " in r.stdout and "-json" in r.stdout and "-config PATH" in r.stdout


# --- an S3 replica (a real S3 server on loopback) ---

def test_s3_replica_url(run, site, s3_server):
    # The file replica's objects copied by a real S3 client; the listing must
    # show the same names and sizes, and S3's LastModified as created.
    prefix = f"listing-{time.time_ns()}"
    s3_server.aws("s3", "cp", "--recursive", "--quiet", site["one"],
                  f"s3://{s3_server.bucket}/{prefix}")
    r = s3_server.aws("s3api", "list-objects-v2", "--bucket", s3_server.bucket,
                      "--prefix", f"{prefix}/", "--output", "json")
    modified = {}
    for o in json.loads(r.stdout)["Contents"]:
        t = datetime.strptime(o["LastModified"].replace("Z", "+00:00"),
                              "%Y-%m-%dT%H:%M:%S.%f%z" if "." in o["LastModified"]
                              else "%Y-%m-%dT%H:%M:%S%z")
        modified[o["Key"][len(prefix) + 1:]] = int(t.timestamp() * 1000)
    url = s3_server.replica_url(prefix)
    env = s3_server.env()

    snaps = ok_json(run, "snapshots", "-json", url, env=env)
    want = expected_snapshots([("s3", site["one"])])
    for w in want:
        key = f"generations/{w['generation']}/snapshots/{w['index']:08x}.snapshot.lz4"
        w["created_ms"] = modified[key]
        w["created"] = rfc3339(modified[key])
    assert snaps == want
    assert ok(run, "snapshots", url, env=env) == tabwriter(snapshot_rows(want))

    segs = ok_json(run, "wal", "-json", url, env=env)
    want = expected_wal([("s3", site["one"])])
    for w in want:
        key = f"generations/{w['generation']}/wal/{w['index']:08x}_{w['offset']:08x}.wal.lz4"
        w["created_ms"] = modified[key]
        w["created"] = rfc3339(modified[key])
    assert segs == want
    assert ok(run, "wal", url, env=env) == tabwriter(wal_rows(want))

    gens = ok_json(run, "generations", "-json", url, env=env)
    assert [g["generation"] for g in gens] == generations_in(site["one"])
    for g in gens:
        times = [t for k, t in modified.items() if k.startswith(f"generations/{g['generation']}/")]
        assert (g["start_ms"], g["end_ms"]) == (min(times), max(times))
