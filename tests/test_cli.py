"""The command-line contract of DESIGN.md, exercised as a user would, in a subprocess."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from firebreak.bench.variants import MANIPULATIONS, make_variant


def test_bank_create_add_list_remove_round_trip(cli, clips: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    assert cli("bank", "create", "known").code == 0

    added = cli("bank", "add", "known", clips["bikes.mp4"], clips["astronaut.png"])
    again = cli("bank", "add", "known", clips["bikes.mp4"])
    listed = cli("bank", "list", "--json")
    removed = cli("bank", "remove", "known", "bikes.mp4")
    after = cli("bank", "list", "--json")

    assert added.code == 0, added.stderr
    assert "added: bikes.mp4" in added.stdout
    assert again.code == 0 and "already banked: bikes.mp4" in again.stdout
    assert json.loads(listed.stdout) == {"bank": "known", "kind": "block", "items": 2}
    assert removed.code == 0
    assert json.loads(after.stdout)["items"] == 1


def test_match_json_prints_one_contract_object_per_file(  # type: ignore[no-untyped-def]
    cli, clips: dict[str, Path], media_dir: Path
) -> None:
    cli("bank", "create", "known")
    cli("bank", "add", "known", clips["cockatoo.mp4"])
    copy = make_variant(
        clips["cockatoo.mp4"], MANIPULATIONS["reencode_360p_crf35"], media_dir / "cli-c360.mp4"
    )

    result = cli("match", copy, clips["carphone_pristine.mp4"], "--json")

    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["verdict"] for line in lines] == ["match", "no_match"]
    first = lines[0]
    assert set(first) == {"file", "verdict", "matches", "elapsed_s"}
    assert first["file"] == str(copy)
    match = first["matches"][0]
    assert set(match) >= {"bank", "item", "score", "signals", "query_segment", "item_segment"}
    assert (match["bank"], match["item"]) == ("known", "cockatoo.mp4")
    assert 0.0 <= match["score"] <= 1.0
    assert len(match["query_segment"]) == len(match["item_segment"]) == 2
    assert lines[1]["matches"] == []


def test_hash_prints_industry_strings(cli, clips: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    video = clips["bigbuckbunny.mp4"]
    data = video.read_bytes()

    md5 = cli("hash", video, "--signal", "md5")
    sha = cli("hash", video, "--signal", "sha256")
    frames = cli("hash", video, "--signal", "video")
    photo = cli("hash", clips["astronaut.png"], "--signal", "pdq")

    assert md5.stdout.strip() == hashlib.md5(data).hexdigest()
    assert sha.stdout.strip() == hashlib.sha256(data).hexdigest()
    lines = frames.stdout.splitlines()
    assert len(lines) == 6  # 5.3 s at one hash a second
    assert all(re.fullmatch(r"[0-9a-f]{64},\d{1,3},\d+\.\d{3}", line) for line in lines)
    assert re.fullmatch(r"[0-9a-f]{64},\d{1,3}\n", photo.stdout)


def test_errors_are_one_line_on_stderr_with_a_non_zero_exit(  # type: ignore[no-untyped-def]
    cli, clips: dict[str, Path]
) -> None:
    missing_bank = cli("bank", "add", "nope", clips["bikes.mp4"])
    duplicate = (cli("bank", "create", "b"), cli("bank", "create", "b"))[1]
    missing_item = cli("bank", "remove", "b", "ghost.mp4")
    wrong_signal = cli("hash", clips["bikes.mp4"], "--signal", "pdq")

    for result in (missing_bank, duplicate, missing_item, wrong_signal):
        assert result.code != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("firebreak: ")
