"""The frame index sharded over nodes: each node holds its prefix shard of the codes, every lookup
fans out to the peers over HTTP, and the answers equal one unsharded index's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firebreak.bench.variants import lavfi_clip
from firebreak.errors import FirebreakError
from firebreak.scale.peers import RemoteShard, peers_from_settings
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.signals import hash_query_file

from .conftest import ffmpeg
from .test_sharing import serving


def _hits(fb: Firebreak, clip: Path) -> set[tuple[int, int, int]]:
    query = hash_query_file(clip, fb.settings)
    evidence = fb.lookup_frames(query.views, query.thumb_views)
    return {
        (signal_id, round(hit.query_time * 1000), hit.distance) for signal_id, hit in evidence.pdq
    }


def test_a_lookup_fans_out_to_the_shards_peer_nodes_hold(tmp_path: Path, postgres_db: str) -> None:
    banked = lavfi_clip("testsrc2", 12, tmp_path / "banked.mp4", size="320x180")
    copy = tmp_path / "copy.mp4"
    ffmpeg("-i", banked, "-vf", "hflip,eq=brightness=0.05", "-crf", "30", copy)
    whole = Firebreak(Settings(home=tmp_path / "whole", database_url=postgres_db))
    try:
        whole.create_bank("attacks")
        whole.bank_file("attacks", banked)
        _, key = whole.store.keys.create("node", "service", "test")
        expected = whole.match_file(copy)
        expected_hits = _hits(whole, copy)
        total = len(whole.index)
    finally:
        whole.close()
    assert expected.verdict.value == "match" and len(expected_hits) > 6

    one = Settings(home=tmp_path / "node1", database_url=postgres_db, index_shard="1/2")
    with serving(one) as (url, node1):
        settings0 = Settings(
            home=tmp_path / "node0",
            database_url=postgres_db,
            index_shard="0/2",
            index_peers=url,
            index_peer_key=key,
        )
        alone = Firebreak(settings0.model_copy(update={"index_peers": ""}))
        node0 = Firebreak(settings0, peers_from_settings(settings0))
        try:
            mine, theirs = len(alone.index), len(node1.index)
            assert mine > 0 and theirs > 0 and mine + theirs == total
            partial = _hits(alone, copy)
            assert partial < expected_hits  # half the codes: some hits only the peer has
            assert _hits(node0, copy) == expected_hits
            result = node0.match_file(copy)
            assert result.verdict == expected.verdict
            assert result.matches[0].score == pytest.approx(expected.matches[0].score)
            assert result.matches[0].query_segment == expected.matches[0].query_segment
            # A hash lookup (the HMA and /v1/lookup path) fans out too.
            # Every banked frame is found, whichever node holds it.
            for frame in node0.hash_for_bank(banked).frames:
                assert node0.lookup_hash("pdq", frame.hex), frame
                assert alone.lookup_hash("pdq", frame.hex) or node1.lookup_hash("pdq", frame.hex)
        finally:
            alone.close()
            node0.close()
    # A peer that does not answer fails the lookup rather than missing its shard's copies.
    with pytest.raises(FirebreakError, match="index peer"):
        RemoteShard(url, key, timeout_s=2).search_radius(np.zeros((1, 32), np.uint8), 31)
