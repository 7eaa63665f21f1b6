#!/usr/bin/python3
"""The processes of the follow tests (test_follow.py), each run on its own:

  follow_tools.py write DB COUNT [--blob N] [--shrink-at K] [--sleep S]
      Commits COUNT transactions to the WAL-mode database DB. Transaction
      i inserts row i of table log and, in the same transaction, sets
      meta's counter to i and its checksum to the sum of n*n over log. At
      --shrink-at K it deletes table pad's rows and VACUUMs, so the file
      shrinks. Prints the last counter.

  follow_tools.py read DB RESULT STOP [--crashes]
      Reads DB (read-only) in a loop until the file STOP exists: each read
      is one transaction that takes the counter, the checksum and the
      count and sums of log, and checks that they describe the same prefix
      of the writer's history, and that the counter never goes back.
      Writes a JSON summary to RESULT: reads, the counters seen, and every
      violation or error. With --crashes, SQLite's refusal to read a file
      whose hot journal a read-only connection may not roll back (what a
      follower killed mid-change leaves until it restarts) is counted
      apart, not as an error.

The writer's tables (created by setup()):
  meta(k TEXT PRIMARY KEY, v INTEGER)  counter, checksum
  log(n INTEGER PRIMARY KEY, data BLOB)
  pad(id INTEGER PRIMARY KEY, data BLOB)
"""
import json
import os
import sqlite3
import sys
import time

MOD = (1 << 61) - 1


def setup(path, pad_rows=0):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER)")
    conn.execute("CREATE TABLE IF NOT EXISTS log (n INTEGER PRIMARY KEY, data BLOB)")
    conn.execute("CREATE TABLE IF NOT EXISTS pad (id INTEGER PRIMARY KEY, data BLOB)")
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('counter', 0), ('checksum', 0)")
    for _ in range(pad_rows):
        conn.execute("INSERT INTO pad (data) VALUES (randomblob(3000))")
    conn.close()


def counter(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT v FROM meta WHERE k = 'counter'").fetchone()[0]
    finally:
        conn.close()


def write(path, count, blob=200, shrink_at=-1, sleep=0.0):
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA busy_timeout=30000")
    start = conn.execute("SELECT v FROM meta WHERE k = 'counter'").fetchone()[0]
    for i in range(start + 1, start + count + 1):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO log VALUES (?, randomblob(?))", (i, blob))
        conn.execute("UPDATE meta SET v = ? WHERE k = 'counter'", (i,))
        conn.execute("UPDATE meta SET v = (v + ?) % ? WHERE k = 'checksum'", (i * i, MOD))
        conn.execute("COMMIT")
        if i - start == shrink_at:
            conn.execute("DELETE FROM pad")
            conn.execute("VACUUM")
        if sleep:
            time.sleep(sleep)
    conn.close()
    return start + count


def read_once(conn):
    conn.execute("BEGIN")
    try:
        c = conn.execute("SELECT v FROM meta WHERE k = 'counter'").fetchone()[0]
        s = conn.execute("SELECT v FROM meta WHERE k = 'checksum'").fetchone()[0]
        n, top, sq = conn.execute(
            "SELECT count(*), coalesce(max(n), 0), coalesce(sum(n * n), 0) FROM log").fetchone()
    finally:
        conn.execute("COMMIT")
    bad = None
    if n != c or top != c or sq % MOD != s:
        bad = f"torn read: counter {c}, checksum {s}, log has {n} rows up to {top} (sum {sq % MOD})"
    return c, bad


def read_loop(path, result, stop, crashes=False):
    out = {"reads": 0, "first": None, "last": None, "violations": [], "errors": [],
           "hot_journal": 0}
    conn = None
    prev = -1
    while not os.path.exists(stop):
        try:
            if conn is None:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30,
                                       isolation_level=None)
            c, bad = read_once(conn)
        except sqlite3.Error as e:
            msg = str(e)
            if crashes and "readonly" in msg.lower():
                out["hot_journal"] += 1
            else:
                out["errors"].append(msg)
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
            continue
        out["reads"] += 1
        if bad:
            out["violations"].append(bad)
        if c < prev:
            out["violations"].append(f"went back from counter {prev} to {c}")
        prev = c
        out["first"] = c if out["first"] is None else out["first"]
        out["last"] = c
    if conn is not None:
        conn.close()
    with open(result, "w") as f:
        json.dump(out, f)


def main():
    cmd = sys.argv[1]
    if cmd == "write":
        import argparse
        ap = argparse.ArgumentParser()
        ap.add_argument("db")
        ap.add_argument("count", type=int)
        ap.add_argument("--blob", type=int, default=200)
        ap.add_argument("--shrink-at", type=int, default=-1)
        ap.add_argument("--sleep", type=float, default=0.0)
        a = ap.parse_args(sys.argv[2:])
        print(write(a.db, a.count, a.blob, a.shrink_at, a.sleep))
    elif cmd == "read":
        read_loop(sys.argv[2], sys.argv[3], sys.argv[4], "--crashes" in sys.argv[5:])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
