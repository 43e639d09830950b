"""Shared fixtures: real clips, a fresh Firebreak home per test, the CLI as a subprocess."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from firebreak.bench.clips import fetch_real_clips
from firebreak.service import Firebreak
from firebreak.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def clips() -> dict[str, Path]:
    """The real filmed clips and photos (fetched once into the cache)."""
    cache = Path(os.environ.get("FIREBREAK_CLIPS_DIR", REPO / ".cache" / "clips"))
    return fetch_real_clips(cache)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide folder for media made with ffmpeg (made once, shared by tests)."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def fb(settings: Settings) -> Iterator[Firebreak]:
    service = Firebreak(settings)
    yield service
    service.close()


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run `firebreak ARGS…` as a subprocess with its own FIREBREAK_HOME."""
    home = tmp_path / "cli-home"

    def run(*args: str | Path, timeout: float = 120) -> CliResult:
        env = {**os.environ, "FIREBREAK_HOME": str(home), "COLUMNS": "200"}
        proc = subprocess.run(
            [sys.executable, "-m", "firebreak.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    run.home = home  # type: ignore[attr-defined]
    return run


def ffmpeg(*args: str | Path) -> None:
    """Run ffmpeg quietly; fail the test with its stderr when it fails."""
    proc = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"ffmpeg failed: {proc.stderr}")


# PostgreSQL: the store's other backend, tested against a real server (.ci/run starts it).

POSTGRES_ADMIN = os.environ.get(
    "FIREBREAK_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres"
)
"""A libpq URL of a maintenance database on the server the PostgreSQL tests use."""


def _postgres_admin() -> psycopg.Connection[Any]:
    """An autocommit connection to the server; the test fails when there is none, unless
    developers opt out of PostgreSQL with FIREBREAK_TEST_NO_POSTGRES=1 (then it is skipped)."""
    if os.environ.get("FIREBREAK_TEST_NO_POSTGRES") == "1":
        pytest.skip("FIREBREAK_TEST_NO_POSTGRES=1 leaves the PostgreSQL tests out")
    try:
        return psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        problem = str(exc)
    pytest.fail(
        f"PostgreSQL is not reachable at {POSTGRES_ADMIN}: {problem}\n"
        "Start it (.ci/run does: pg_ctlcluster --skip-systemctl-redirect VERSION main start), "
        "point FIREBREAK_TEST_POSTGRES at another server, or set FIREBREAK_TEST_NO_POSTGRES=1 "
        "to leave the PostgreSQL tests out.",
        pytrace=False,
    )


def _terminate(admin: psycopg.Connection[Any], database: str) -> None:
    """End every other connection to `database` (stores a test left open)."""
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a database made for this test session (one per xdist worker) and
    dropped after it."""
    admin = _postgres_admin()
    name = f"firebreak_test_{secrets.token_hex(6)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_ADMIN).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _terminate(admin, name)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture
def postgres_db(postgres_url: str) -> str:
    """`postgres_url` emptied for this test: no tables, so a store migrates it from nothing and
    no test sees another's rows (~10 ms a test; a new database each costs more)."""
    url = make_url(postgres_url)
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        _terminate(admin, str(url.database))
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute("DROP SCHEMA public CASCADE")
        db.execute("CREATE SCHEMA public")
    return postgres_url


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_db: str) -> Settings:
    """Settings of a Firebreak on an empty PostgreSQL database (its home holds only files)."""
    return Settings(home=tmp_path / "home", database_url=postgres_db)


@pytest.fixture
def pg_fb(pg_settings: Settings) -> Iterator[Firebreak]:
    service = Firebreak(pg_settings)
    yield service
    service.close()
