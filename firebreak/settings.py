"""One typed settings object for the whole system, read from `FIREBREAK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ActionRule(BaseModel):
    """From a verdict on an upload to actions, for matches of some banks and labels.

    The first rule whose bank, label (an item's or its bank's metadata `label`) and verdict fit
    the best match decides. Actions: block, hold (for review), allow, webhook (signed POST to
    `scan_webhook_url`), bank:NAME (bank the upload into NAME)."""

    bank: str = "*"
    label: str = "*"
    verdict: Literal["match", "review"] = "match"
    actions: list[str] = Field(default_factory=lambda: ["block"])


class Settings(BaseSettings):
    """Every tunable of Firebreak. Thresholds and limits live here, never as constants in code."""

    model_config = SettingsConfigDict(env_prefix="FIREBREAK_", frozen=True)

    home: Path = Field(default=Path(".firebreak"), description="Where data lives.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite under `home` when unset."
    )
    actor: str = Field(default="cli", description="Recorded as `added_by` on banked items.")

    # Limits enforced before and during decoding.
    max_file_bytes: int = 4 * 1024**3
    max_duration_s: float = 4 * 3600.0
    max_video_pixels: int = 8192 * 4320
    max_image_pixels: int = 100_000_000
    max_decoded_frames: int = 2_000_000
    max_decode_s: float = 600.0
    max_decode_errors: int = 50
    min_decoded_fraction: float = Field(
        default=0.9,
        description="A video whose decodable part covers less of its declared duration is truncated.",
    )

    # Sampling: banks use vPDQ's 1 hash/s; queries hash (nearly) every frame, because PDQ moves
    # by 30+ bits within a fifth of a second of moving footage: only a query frame within a frame
    # or two of a banked sample's time is sure to land within the threshold of it.
    bank_fps: float = 1.0
    query_fps: float = 30.0
    # Banked frames are hashed at full resolution, bit-exact with vPDQ. Query frames are decoded
    # small, their views (whole, mirrored, content box) cut out and scaled to 64x64, PDQ's own
    # working size: within ~10 bits of the full-size hash at a tenth of the cost.
    bank_frame_size: int = Field(default=0, description="0 hashes frames at full resolution.")
    query_decode_size: int = 192
    query_window_s: float = Field(
        default=10.0,
        description="Query frames are looked at (borders, panels) this many s at once.",
    )
    query_thumb_fps: float = Field(
        default=6.0, description="Query frames a second whose thumbnails are looked up."
    )

    # Thresholds per signal type, by signal name, overriding each type's default; e.g.
    # FIREBREAK_THRESHOLDS='{"pdq": 28}'.
    thresholds: dict[str, int] = Field(default_factory=dict)
    min_quality: int = Field(default=50, description="PDQ frames below this quality are ignored.")

    # Alignment and verdicts.
    align_tolerance_s: float = Field(
        default=0.75, description="How far (item seconds) a hit may lie off the aligned line."
    )
    align_speeds: tuple[float, ...] = Field(
        default=(0.5, 2 / 3, 0.75, 0.8, 0.9, 1.0, 1.1, 1.25, 4 / 3, 1.5, 2.0),
        description="Playback speeds of copies that alignment tries.",
    )
    min_matched_frames: int = Field(
        default=3, description="Aligned frames needed for full confidence in a video match."
    )
    min_thumb_frames: int = Field(
        default=4, description="Aligned frames a thumbnail-only match needs for full confidence."
    )
    match_score: float = Field(default=0.5, description="Score at or above which we say match.")
    review_score: float = Field(default=0.2, description="Score at or above which we say review.")

    # Live streams.
    live_fps: float = Field(default=5.0, description="Frames a second sampled from a live stream.")
    live_step_s: float = Field(default=0.5, description="How often (stream seconds) to match.")
    live_window_s: float = Field(
        default=20.0, description="The recent stream seconds each match looks at."
    )
    live_audio_window_s: float = Field(
        default=10.0, description="The recent soundtrack seconds each match looks at."
    )
    live_layout_s: float = Field(
        default=5.0, description="Recent seconds in which borders and panels are looked for."
    )
    live_layout_every_s: float = Field(
        default=2.0, description="How often (stream seconds) panels, insets, screens are sought."
    )
    live_recent_layout_s: float = Field(
        default=0.8, description="Recent seconds in which a content box that just changed shows."
    )
    live_scorer_fps: float = Field(
        default=2.0, description="Colour frames a second handed to scorers (models, OCR)."
    )
    live_scorer_size: int = Field(default=640, description="Longer side of scorers' frames.")
    live_scorer_window_s: float = Field(default=4.0, description="Seconds each scoring reads.")
    live_scorer_step_s: float = Field(default=2.0, description="How often scorers run.")
    live_risk_smoothing: float = Field(
        default=0.5, description="Weight of the newest risk in each scorer's moving average."
    )
    live_escalation: dict[str, float] = Field(
        default_factory=lambda: {"review": 0.5, "alert": 0.8},
        description="Smoothed risk at which a stream goes to review, and at which it is alerted "
        "on and acted against (cut, webhook).",
    )
    live_scorer_max_faults: int = Field(
        default=3, description="Failures in a row after which a scorer is left out."
    )
    live_open_timeout_s: float = 10.0
    live_read_timeout_s: float = Field(
        default=10.0, description="A stream that sends nothing for this long has stalled."
    )
    live_reconnect_attempts: int = Field(
        default=3, description="Reconnections tried, with back-off, after a stream drops."
    )
    live_backoff_s: float = Field(default=0.5, description="The first reconnection's wait.")
    live_cut: Literal["none", "nginx-rtmp", "webhook"] = Field(
        default="none", description="How a stream that shows banked content is cut off."
    )
    nginx_rtmp_control_url: str | None = Field(
        default=None, description="nginx-rtmp's rtmp_control location, e.g. http://host/control."
    )
    live_cut_webhook_url: str | None = None
    alert_webhook_url: str | None = Field(
        default=None, description="Where alerts are POSTed, signed with `webhook_secret`."
    )
    webhook_secret: SecretStr | None = None
    vpdq_match_share: float = Field(
        default=0.8,
        description="Share of a vPDQ hash's frames that must find an item for a hash lookup to "
        "match it (vPDQ's own query rule).",
    )
    api_max_upload_bytes: int = Field(
        default=1024**3, description="Largest upload or fetched file the API accepts."
    )
    api_fetch_timeout_s: float = Field(default=30.0, description="Limit on fetching a URL.")
    api_fetch_private: bool = Field(
        default=False,
        description="Let the API fetch URLs on loopback and private networks (off: no SSRF).",
    )
    hma_trusted_networks: str = Field(
        default="",
        description="CIDRs (comma-separated) whose clients may call the HMA-compatible routes "
        "without a key, as HMA's clients send none.",
    )
    action_rules: list[ActionRule] = Field(
        default_factory=lambda: [
            ActionRule(verdict="match", actions=["block"]),
            ActionRule(verdict="review", actions=["hold"]),
        ],
        description="Rules from a scan's verdict to actions, first fit wins (JSON list).",
    )
    scan_webhook_url: str | None = Field(
        default=None, description="Where the `webhook` action POSTs a scan's decision (signed)."
    )
    exchange_false_positives_to_disable: int = Field(
        default=2,
        description="Partners' false-positive opinions after which a shared item stops "
        "matching until a person decides.",
    )
    ui_session_hours: float = Field(
        default=8.0, gt=0, description="How long a review-console login lasts."
    )
    live_max_streams: int = Field(
        default=8, description="Streams one service process watches at most (measured: 8/core)."
    )
    live_policy: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "review": ["delay", "notify"],
            "alert": ["cut", "webhook", "notify"],
        },
        description="The actions each escalation level sets off, in order: cut, delay, webhook, "
        "notify (those not configured are skipped). A banked-content match is an alert.",
    )
    live_delay_webhook_url: str | None = Field(
        default=None,
        description="Where a request to put a stream on a broadcast delay is POSTed (signed).",
    )
    live_delay_s: float = Field(default=30.0, description="The broadcast delay asked for.")
    review_webhook_url: str | None = Field(
        default=None, description="Where reviewers are told of a new incident (signed POST)."
    )
    evidence_key: Path | None = Field(
        default=None,
        description="Ed25519 key (PEM) that signs evidence packages; made under `home/keys` "
        "when unset.",
    )

    text_head: Path | None = Field(
        default=None,
        description="The context classifier's head (`firebreak text train`); "
        "`home/models/text-head.json` when unset and present.",
    )
    text_match_support: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="P(support) from which a post naming a designated organisation is a match.",
    )
    text_review_support: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description="P(support) from which such a post is held for review; with no classifier "
        "trained, every post naming one is.",
    )
    text_ocr_fps: float = Field(
        default=1.0, gt=0.0, le=30.0, description="Frames a second read for on-screen text."
    )
    text_ocr_max_frames: int = Field(
        default=600, ge=1, description="Most frames of one video read for on-screen text."
    )

    queue_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="The upload path's durable queue (Redis Streams) for `firebreak worker`.",
    )
    queue_prefix: str = Field(
        default="firebreak", description="Prefix of the queue's stream keys: one per deployment."
    )
    queue_visibility_timeout_s: float = Field(
        default=30.0, gt=0, description="An event pending this long with a worker is handed on."
    )
    queue_max_deliveries: int = Field(
        default=5, ge=1, description="Deliveries after which an event goes to the dead letters."
    )
    worker_batch: int = Field(default=16, ge=1, description="Events a worker takes at once.")
    matcher_refresh_s: float = Field(
        default=0.5, gt=0, description="How often an idle matcher catches its index up."
    )
    worker_media_root: Path | None = Field(
        default=None, description="Upload paths given to workers must lie under it."
    )

    index_shard: str = Field(
        default="",
        pattern=r"^$|^[0-9]{1,4}/[0-9]{1,4}$",
        description="I/N: this node's frame index holds shard I of N by hash prefix (empty: all); "
        "the nodes must share one database.",
    )
    index_peers: str = Field(
        default="",
        description="Base URLs (comma-separated) of the nodes holding the other shards; every "
        "frame lookup fans out to them.",
    )
    index_peer_key: SecretStr | None = Field(
        default=None, description="The API key sent to the peer nodes."
    )

    @field_validator("index_shard")
    @classmethod
    def _shard_in_range(cls, value: str) -> str:
        if value:
            number, count = (int(v) for v in value.split("/"))
            if not 0 <= number < count:
                raise ValueError(f"{value}: I must lie in 0..N-1")
        return value

    @property
    def shard(self) -> tuple[int, int] | None:
        """(I, N) of `index_shard`, or None."""
        if not self.index_shard:
            return None
        number, count = (int(v) for v in self.index_shard.split("/"))
        return number, count

    @property
    def resolved_text_head(self) -> Path | None:
        if self.text_head is not None:
            return self.text_head
        default = self.home / "models" / "text-head.json"
        return default if default.is_file() else None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'firebreak.db').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
