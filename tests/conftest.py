"""Shared fixtures: real clips, a fresh Firebreak home per test, the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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
