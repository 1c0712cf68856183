"""Starts or stops a PostgreSQL with pgvector from the PyPI package pgserver, on TCP.

pgserver's own PostgresServer listens on a Unix socket only; the tests and benchmarks
connect by URL over TCP, so this starts the bundled binaries with pgserver's helpers
(initdb as a non-root user when run as root, as pgserver does) on 127.0.0.1:<port>,
and creates the `vector` extension in database postgres.

Usage: pgvector_server.py start <pgdata> <port>   |   pgvector_server.py stop <pgdata>
"""
import os
import pwd
import stat
import sys
from pathlib import Path

from pgserver import _commands as pg
from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists


def system_user():
    if os.geteuid() != 0:
        return None
    # postgres refuses to run as root; pgserver uses this account for the same reason.
    ensure_user_exists("pgserver")
    return "pgserver"


def start(pgdata: Path, port: int) -> None:
    user = system_user()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(pg.POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(pg.POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(pg.POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        pg.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user)
    pg.pg_ctl(
        [
            "-w",
            "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}",
            # The tests open a few pools at once and the benchmark a few more.
            "-o", "-c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "-l", str(pgdata / "log"),
            "start",
        ],
        pgdata=pgdata,
        user=user,
        timeout=60,
    )
    pg.psql(
        ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-q",
         "-v", "ON_ERROR_STOP=1", "-c", "CREATE EXTENSION IF NOT EXISTS vector"],
    )


def stop(pgdata: Path) -> None:
    pg.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=system_user(), timeout=60)


if __name__ == "__main__":
    if sys.argv[1] == "start":
        start(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        stop(Path(sys.argv[2]))
