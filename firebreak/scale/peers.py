"""Frame indices beyond one node: the shards other nodes hold, queried over HTTP.

    node 0 (shard 0/N) ──┬──► its own index
                         ├──► POST node 1 /v1/index/frames/search ──► shard 1's hits
                         └──► ...                                 ──► shard N-1's hits

Every node indexes only its shard of the frame codes (by hash prefix, `FIREBREAK_INDEX_SHARD`)
and answers for it alone; a lookup on any node fans out to the peers
(`FIREBREAK_INDEX_PEERS`) and merges. The nodes share one database, so a hit's id (the stored
signal's) means the same on every node. A peer that does not answer fails the lookup: a
silently missing shard would let copies through.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from firebreak.errors import FirebreakError
from firebreak.index.hamming import IndexHit
from firebreak.settings import Settings

MAX_CODES = 20_000
"""Codes one search request may carry (a long video's query views, many times over)."""


class PeerFailed(FirebreakError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"index peer {url}: {reason}")
        self.url = url
        self.reason = reason


class RemoteShard:
    """A peer node's frame index, as a shard: searched over HTTP; it follows the shared store by
    itself, so adds and removes here do nothing."""

    def __init__(self, url: str, key: str | None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self._timeout_s = timeout_s
        self._count = 0

    def __len__(self) -> int:
        """The peer's count as of the last answer."""
        return self._count

    def add(self, ids: Any, codes: Any) -> None:
        return None

    def remove(self, ids: Any) -> None:
        return None

    def search_radius(self, queries: Any, max_distance: int) -> list[IndexHit]:
        codes = np.ascontiguousarray(queries, dtype=np.uint8)
        hits: list[IndexHit] = []
        for start in range(0, len(codes), MAX_CODES):
            part = codes[start : start + MAX_CODES]
            answer = self._post(
                {"codes": [row.tobytes().hex() for row in part], "max_distance": max_distance}
            )
            hits.extend(IndexHit(start + int(r), int(i), int(d)) for r, i, d in answer["hits"])
        return hits

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(
            f"{self.url}/v1/index/frames/search",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise PeerFailed(self.url, f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PeerFailed(self.url, str(getattr(exc, "reason", exc))) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("hits"), list):
            raise PeerFailed(self.url, "answered something other than hits")
        self._count = int(answer.get("count", 0))
        return answer


def peers_from_settings(settings: Settings) -> list[RemoteShard]:
    """The peer shards `FIREBREAK_INDEX_PEERS` names, with `FIREBREAK_INDEX_PEER_KEY`."""
    key = settings.index_peer_key.get_secret_value() if settings.index_peer_key else None
    urls = [u.strip() for u in settings.index_peers.split(",") if u.strip()]
    return [RemoteShard(url, key, settings.api_fetch_timeout_s) for url in urls]
