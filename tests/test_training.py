"""`firebreak train` and `firebreak eval` end to end on a small labelled set made with ffmpeg.

Attack simulations: steady footage, then from `event_start_s` a shaking hand-held view and bursts
of gunfire-like shots. Benign look-alikes: steady footage with ambient sound, shaking footage
without shots (sport), and steady footage with shots heard far off behind music (a film).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firebreak.classify.head import HEAD_FORMAT
from firebreak.classify.scorers import head_scorer
from firebreak.live.session import LiveEvent, LiveSession
from firebreak.service import Firebreak
from firebreak.settings import Settings

from .conftest import ffmpeg

SOURCES = [
    "mandelbrot=size=320x180:rate=25",
    "testsrc2=size=320x180:rate=25",
    "life=size=320x180:rate=25:mold=10:ratio=0.1",
    "cellauto=size=320x180:rate=25:rule=30",
]
EVENT_START_S = 3.0
CLIP_S = 10.0


def _shaky(phase: int) -> str:
    return (
        "crop=w=iw*0.7:h=ih*0.7:"
        f"x='(iw-ow)/2+(iw-ow)/2*sin(t*11+{phase})':y='(ih-oh)/2+(ih-oh)/2*sin(t*17+{phase})',"
        "scale=320:180"
    )


def _steady() -> str:
    return "crop=w=iw*0.7:h=ih*0.7,scale=320:180"


def _shots(period: float, level: float) -> str:
    return (
        f"aevalsrc='{level}*(random(0)*2-1)*exp(-70*mod(t,{period}))*lt(mod(t,{period}),0.12)'"
        ":s=44100"
    )


def _clip(dest: Path, source: str, parts: list[tuple[float, str, str]]) -> None:
    """`parts`: (seconds, video filter, audio source) one after the other."""
    inputs: list[str | Path] = []
    graph = []
    for i, (seconds, video, audio) in enumerate(parts):
        inputs += ["-f", "lavfi", "-t", str(seconds), "-i", source]
        inputs += ["-f", "lavfi", "-t", str(seconds), "-i", audio]
        graph.append(f"[{2 * i}:v]{video},setsar=1,format=yuv420p[v{i}]")
        graph.append(f"[{2 * i + 1}:a]aresample=44100,aformat=channel_layouts=mono[a{i}]")
    chain = "".join(f"[v{i}][a{i}]" for i in range(len(parts)))
    graph.append(f"{chain}concat=n={len(parts)}:v=1:a=1[v][a]")
    ffmpeg(
        *inputs,
        "-filter_complex",
        ";".join(graph),
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-c:a",
        "aac",
        dest,
    )


def _make_set(root: Path, seed: int) -> Path:
    (root / "attack").mkdir(parents=True)
    (root / "benign").mkdir(parents=True)
    ambient = "anoisesrc=a=0.03:c=pink:r=44100"
    music = "sine=frequency=330:sample_rate=44100"
    for i in range(4):
        source = SOURCES[(i + seed) % len(SOURCES)]
        attack = root / "attack" / f"attack-{seed}-{i}.mp4"
        _clip(
            attack,
            source,
            [
                (EVENT_START_S, _steady(), ambient),
                (CLIP_S - EVENT_START_S, _shaky(i + seed), _shots(0.3 + 0.1 * i, 0.9)),
            ],
        )
        attack.with_suffix(".json").write_text(json.dumps({"event_start_s": EVENT_START_S}))
        _clip(root / "benign" / f"calm-{seed}-{i}.mp4", source, [(CLIP_S, _steady(), ambient)])
        _clip(root / "benign" / f"sport-{seed}-{i}.mp4", source, [(CLIP_S, _shaky(i), music)])
    return root


@pytest.fixture(scope="module")
def labelled_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("labelled")
    return _make_set(base / "train", 0), _make_set(base / "held-out", 1)


def _firebreak(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firebreak.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_train_then_eval_reports_auc_time_to_detect_and_false_alerts(
    labelled_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    train_set, held_out = labelled_sets
    head = tmp_path / "head.json"

    trained = _firebreak("train", train_set, "--out", head)
    evaluated = _firebreak("eval", head, held_out, "--json")

    assert trained.returncode == 0, trained.stderr
    assert "roc_auc" in trained.stdout
    record = json.loads(head.read_text())
    assert record["format"] == HEAD_FORMAT and record["version"]
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert metrics["roc_auc"] >= 0.8
    assert metrics["missed"] <= 1
    assert 0.0 < metrics["detect_p50_s"] <= 8.0
    assert metrics["false_alerts_per_hour"] >= 0.0 and metrics["benign_hours"] > 0


def test_train_refuses_a_folder_without_both_labels(tmp_path: Path) -> None:
    (tmp_path / "attack").mkdir()

    result = _firebreak("train", tmp_path, "--out", tmp_path / "head.json")

    assert result.returncode != 0
    assert "attack/ and benign/" in result.stderr


def test_trained_head_alerts_on_a_live_attack_and_not_on_look_alikes(
    labelled_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    train_set, held_out = labelled_sets
    head = tmp_path / "head.json"
    assert _firebreak("train", train_set, "--out", head).returncode == 0
    settings = Settings(home=tmp_path / "home")
    fb = Firebreak(settings)

    def watch(clip: Path) -> list[LiveEvent]:
        events: list[LiveEvent] = []
        scorers = [head_scorer(head)]
        LiveSession(str(clip), fb, settings, events.append, realtime=False, scorers=scorers).run()
        return [e for e in events if e.event == "alert"]

    attack = watch(held_out / "attack" / "attack-1-0.mp4")
    benign = [watch(clip) for clip in sorted((held_out / "benign").glob("*.mp4"))]
    fb.close()

    assert ("head", "alert") in [(a.source, a.level) for a in attack]
    assert all(a.stream_time > EVENT_START_S for a in attack)
    assert [a for alerts in benign for a in alerts if a.level == "alert"] == []
