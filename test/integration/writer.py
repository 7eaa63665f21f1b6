#!/usr/bin/python3
"""A real application writing to a WAL-mode SQLite database, run as its own
process by the integration tests.

usage: writer.py DB_PATH --seed N --count N [--big-every N] [--big-bytes N]
                 [--checkpoint-every N] [--vacuum-every N] [--sleep SECONDS]
                 [--seconds S] [--no-autocheckpoint]

Commits --count transactions (or runs for --seconds) of random sizes into
table t (id, writer, n, payload): most insert or update a few small rows,
some rows are larger than a page (overflow pages), and every --big-every
transactions one inserts --big-bytes in one go (more than SQLite's default
checkpoint threshold). It can also run the application's own checkpoints
(cycling PASSIVE, FULL, RESTART, TRUNCATE) and VACUUM. Prints the number of
transactions committed.
"""
import argparse
import random
import sqlite3
import sys
import time

MODES = ["PASSIVE", "FULL", "RESTART", "TRUNCATE"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--big-every", type=int, default=0)
    ap.add_argument("--big-bytes", type=int, default=6 << 20)
    ap.add_argument("--checkpoint-every", type=int, default=0)
    ap.add_argument("--vacuum-every", type=int, default=0)
    ap.add_argument("--sleep", type=float, default=0)
    ap.add_argument("--no-autocheckpoint", action="store_true")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    conn = sqlite3.connect(args.db, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=60000")
    if args.no_autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER, payload BLOB)")
    deadline = time.monotonic() + args.seconds if args.seconds else None
    done = 0
    while (deadline is None and done < args.count) or (deadline is not None and time.monotonic() < deadline):
        i = done + 1
        conn.execute("BEGIN IMMEDIATE")
        if args.big_every and i % args.big_every == 0:
            chunk = 64 * 1024
            for _ in range(args.big_bytes // chunk):
                conn.execute("INSERT INTO t (writer, n, payload) VALUES (?, ?, ?)",
                             (args.seed, i, rng.randbytes(chunk)))
        else:
            for _ in range(rng.randint(1, 5)):
                op = rng.random()
                size = rng.choice([10, 100, 1000, 5000, 20000])
                if op < 0.7:
                    conn.execute("INSERT INTO t (writer, n, payload) VALUES (?, ?, ?)",
                                 (args.seed, i, rng.randbytes(size)))
                elif op < 0.9:
                    conn.execute("UPDATE t SET payload = ?, n = ? WHERE id = (SELECT id FROM t WHERE writer = ? ORDER BY random() LIMIT 1)",
                                 (rng.randbytes(size), i, args.seed))
                else:
                    conn.execute("DELETE FROM t WHERE id = (SELECT id FROM t WHERE writer = ? ORDER BY random() LIMIT 1)",
                                 (args.seed,))
        conn.execute("COMMIT")
        done += 1
        if args.checkpoint_every and i % args.checkpoint_every == 0:
            # Like Litestream 0.3, litestream holds a read transaction, so a
            # FULL/RESTART/TRUNCATE checkpoint may wait out its busy timeout:
            # keep that short here, as an application doing this should.
            mode = MODES[(i // args.checkpoint_every) % len(MODES)]
            conn.execute("PRAGMA busy_timeout=100")
            conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
            conn.execute("PRAGMA busy_timeout=60000")
        if args.vacuum_every and i % args.vacuum_every == 0:
            conn.execute("VACUUM")
        if args.sleep:
            time.sleep(args.sleep)
    conn.close()
    print(done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
