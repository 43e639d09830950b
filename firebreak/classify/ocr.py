"""On-screen text: read the words in a stream's frames and match them against a watch list.

A live attack or a propaganda clip often names itself on screen: a group's name, a slogan, a
hashtag, a line of a manifesto. `OcrScorer` reads the text in a few frames of each window with
RapidOCR (PP-OCRv4, a Chinese and English model, run offline with onnxruntime) and looks for each
`WatchTerm` in it.

Matching tolerates what OCR does to text. Both sides are normalised (NFKC, case folded, accents
stripped, punctuation and `#` turned into word breaks, CamelCase hashtags split, Han and kana
characters made words of their own), then each term is aligned inside the frame's text with a
weighted edit distance:

- a wrong letter costs 1, a look-alike (O/0, l/1/i, S/5, B/8, …) a quarter;
- a space dropped or added costs 0.3, because OCR often runs words together or splits them
  (PP-OCR reads bold capitals as "WEARETHENORTHERNFRONT" as often as not);
- a term's end that falls inside a recognised word costs 1, like a wrong letter: a short term
  cannot afford it ("isis" is not found in "crisis"), a long one can (its words run together with
  their neighbours', as OCR has them, but also "northern front" in "northern frontier");
- the frame's lines are joined in reading order, so a phrase wrapped over two lines is found.

Similarity is 1 - cost / (letters + 0.3 × inner spaces of the term); a term matches at
`match_threshold` and above. A term's risk is its weight × how close the match is (0.6 at the
threshold, 1 when exact) × how many of the window's frames showed it (0.75 for one, 0.875 for two,
0.94 for three, …); the window's risk is its riskiest term's. So a term of weight 1 read exactly in
one frame scores 0.75, and one read at the threshold in one frame 0.45.

Cost per window is bounded: at most `max_frames` frames are read, frames nearly identical to the
last one read (a caption over a still shot) reuse its text, and frames are shrunk to at most
`max_side` pixels. The OCR model loads on first use.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.classify.base import RiskScore, ScoringWindow
from firebreak.errors import FirebreakError

Pixels = npt.NDArray[np.uint8]
_Costs = npt.NDArray[np.float64]
_Codes = npt.NDArray[np.int64]

# Edit costs (one wrong letter = 1).
_LOOKALIKE_COST = 0.25
_SPACE_COST = 0.3
_BOUNDARY_COST = 1.0

# Characters OCR (and evaders writing l33t) swap for one another, after case folding.
_LOOKALIKES = ("o0", "il1|", "s5$", "b8", "z2", "g9", "a4@", "e3", "t7")
_CLASS_OF = {ch: n for n, group in enumerate(_LOOKALIKES) for ch in group}

# Scripts written without spaces: each character is a word of its own.
_UNSPACED = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
# Dots and apostrophes inside a word (I.S.I.S., don't) join; other punctuation breaks words.
_JOINERS = re.compile(r"(?<=\w)[.'’](?=\w)")
# Look-alike symbols that OCR reads for letters; kept so that `_LOOKALIKES` can weigh them.
_LETTERLIKE_SYMBOLS = frozenset("|$@")

# A frame is read again when more than ~3 pixels of its 160×90 grey thumbnail moved by over 16
# levels: a one-word change in a 12 px caption moves ~9, JPEG noise none. Erring towards reading
# again costs one OCR run; erring the other way misses a caption.
_THUMB_SIZE = (160, 90)
_THUMB_CHANGED_LEVEL = 16
_THUMB_CHANGED_SHARE = 0.0002
_MAX_EVIDENCE_MATCHES = 5
_MAX_EVIDENCE_TEXT = 300

FEATURE_NAMES = (
    "best_similarity",  # closest any term came, matched or not (0 when none came near)
    "best_weighted_similarity",  # of matched terms, similarity × weight
    "matched_frames",  # frames read in which some term matched
    "matched_frame_share",  # the same, as a share of the frames read
    "terms_matched",
    "match_ocr_confidence",  # OCR's mean confidence in the riskiest match's lines
    "text_chars_per_frame",  # letters and digits read, a frame on average
    "text_area_share",  # share of the frame inside text boxes, on average
)


class WatchListInvalid(FirebreakError):
    """A watch list that cannot be read: the line and why."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class WatchTerm:
    """A name, slogan, hashtag or manifesto line whose appearance on screen is a warning."""

    text: str
    label: str | None = None
    """Who or what it belongs to (an organisation, a manifesto), for reviewers."""
    weight: float = 1.0
    """How telling a sighting is, 0 to 1: a group's unique slogan 1, a word it shares less."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"watch term weight must lie in 0..1, not {self.weight}")
        if not normalise_text(self.text):
            raise ValueError(f"watch term has no letters or digits: {self.text!r}")


@dataclass(frozen=True)
class TextLine:
    """One line of text OCR found in a frame."""

    text: str
    confidence: float
    area_share: float
    """Share of the frame its box covers."""
    box: tuple[int, int, int, int] | None = None
    """Where it is: x, y, width, height in the pixels of the frame read."""


def load_watch_list(path: Path | str) -> tuple[WatchTerm, ...]:
    """The terms of a UTF-8 watch list, in file order.

    One term a line: `text`, `text|label` or `text|label|weight` (weight 0..1, default 1; an empty
    label is none). A line whose first character is `#` followed by no letter or digit ("# note",
    "##") is a comment, as is the rest of a line after " # "; `#hashtag` is a term. Blank lines are
    skipped. Raises `WatchListInvalid` naming the first bad line.
    """
    source = str(path)
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise WatchListInvalid(source, 0, f"cannot read: {error}") from error
    terms: list[WatchTerm] = []
    for number, raw in enumerate(content.splitlines(), start=1):
        line = re.split(r"\s#(?:\s|$)", raw, maxsplit=1)[0].strip()
        if not line or (line.startswith("#") and not line[1:2].isalnum()):
            continue
        fields = [part.strip() for part in line.split("|")]
        if len(fields) > 3:
            raise WatchListInvalid(source, number, "more than three |-separated fields")
        label = fields[1] if len(fields) > 1 and fields[1] else None
        weight = 1.0
        if len(fields) == 3:
            try:
                weight = float(fields[2])
            except ValueError:
                raise WatchListInvalid(
                    source, number, f"weight is no number: {fields[2]!r}"
                ) from None
        try:
            terms.append(WatchTerm(fields[0], label, weight))
        except ValueError as error:
            raise WatchListInvalid(source, number, str(error)) from None
    return tuple(terms)


def normalise_text(text: str) -> str:
    """`text` as lower-case words of letters and digits, single-spaced, without accents.

    Equal for spellings a reader would call the same: case, accents, compatibility forms (full-width
    letters, ligatures), punctuation, `#` and CamelCase in hashtags, dots in acronyms. The symbols
    OCR reads for letters (| $ @) stay, as characters of their own; Han and kana characters are
    words of their own.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _CAMEL.sub(" ", text)
    text = _JOINERS.sub("", text)
    decomposed = unicodedata.normalize("NFD", text.casefold())
    kept = "".join(
        ch if ch.isalnum() or ch in _LETTERLIKE_SYMBOLS else " "
        for ch in decomposed
        if not unicodedata.combining(ch)
    )
    kept = _UNSPACED.sub(r" \1 ", unicodedata.normalize("NFC", kept))
    return " ".join(kept.split())


@dataclass(frozen=True)
class _Pattern:
    """A normalised term ready to align: codes, per-character costs and its quick-reject grams."""

    term: WatchTerm
    words: str
    codes: _Codes
    classes: _Codes
    delete_costs: _Costs
    mismatch_costs: _Costs
    """What aligning each character with a different one costs (boundaries cost more)."""
    is_space: npt.NDArray[np.bool_]
    mass: float
    bigrams: tuple[str, ...]

    @classmethod
    def of(cls, term: WatchTerm) -> _Pattern:
        words = normalise_text(term.text)
        padded = f" {words} "
        last = len(padded) - 1
        deletes = [
            _BOUNDARY_COST if i in (0, last) else _SPACE_COST if ch == " " else 1.0
            for i, ch in enumerate(padded)
        ]
        mismatches = [_BOUNDARY_COST if i in (0, last) else 1.0 for i in range(len(padded))]
        letters = len(words.replace(" ", ""))
        return cls(
            term=term,
            words=words,
            codes=_codes(padded),
            classes=_classes(padded),
            delete_costs=np.array(deletes),
            mismatch_costs=np.array(mismatches),
            is_space=np.array([ch == " " for ch in padded]),
            mass=letters + _SPACE_COST * words.count(" "),
            bigrams=_bigrams(_folded(words)),
        )


@dataclass(frozen=True)
class _FrameText:
    """A frame's recognised lines, joined in reading order for matching."""

    time_s: float
    lines: tuple[TextLine, ...]
    padded: str
    line_of: npt.NDArray[np.int64]
    """For each character of `padded`, the line it came from (-1 for the joins)."""
    codes: _Codes
    classes: _Codes
    insert_cumsum: _Costs
    """Cost of skipping the first j characters of `padded`, j = 0..len."""
    bigrams: frozenset[str]

    @classmethod
    def of(cls, time_s: float, lines: Sequence[TextLine]) -> _FrameText:
        parts, owners = [" "], [-1]
        for index, line in enumerate(lines):
            words = normalise_text(line.text)
            if words:
                parts.append(words + " ")
                owners.extend([index] * len(words) + [-1])
        padded = "".join(parts)
        inserts = np.array([_SPACE_COST if ch == " " else 1.0 for ch in padded])
        return cls(
            time_s=time_s,
            lines=tuple(lines),
            padded=padded,
            line_of=np.array(owners, dtype=np.int64),
            codes=_codes(padded),
            classes=_classes(padded),
            insert_cumsum=np.concatenate([[0.0], np.cumsum(inserts)]),
            bigrams=frozenset(_bigrams(_folded(padded))),
        )

    @property
    def chars(self) -> int:
        return len(self.padded.replace(" ", ""))


@dataclass(frozen=True)
class _Sighting:
    """Where a term was found in one frame."""

    similarity: float
    time_s: float
    matched: str
    lines: tuple[TextLine, ...]


def _codes(text: str) -> _Codes:
    return np.array([ord(ch) for ch in text], dtype=np.int64)


def _classes(text: str) -> _Codes:
    # Characters outside every look-alike group get a class of their own (-1 - code point).
    return np.array([_CLASS_OF.get(ch, -1 - ord(ch)) for ch in text], dtype=np.int64)


def _folded(words: str) -> str:
    """Spaces dropped and look-alikes made equal: what no cheap edit can change."""
    return "".join(
        _LOOKALIKES[_CLASS_OF[ch]][0] if ch in _CLASS_OF else ch for ch in words if ch != " "
    )


def _bigrams(text: str) -> tuple[str, ...]:
    return tuple(text[i : i + 2] for i in range(len(text) - 1))


def _could_match(pattern: _Pattern, frame: _FrameText, max_cost: float) -> bool:
    """False only when the term cannot be within `max_cost` of any span of the frame's text.

    Each edit that costs 1 destroys at most two of the term's bigrams and cheaper edits (spaces,
    look-alikes) none once spaces are dropped and look-alikes folded, so a match keeps at least
    (bigrams - 2 × max_cost) of them.
    """
    needed = len(pattern.bigrams) - 2 * math.floor(max_cost)
    if needed <= 0:
        return True
    present = sum(1 for gram in pattern.bigrams if gram in frame.bigrams)
    return present >= needed


def _align_costs(
    pattern: _Pattern, codes: _Codes, classes: _Codes, cumsum: _Costs, *, anchored: bool = False
) -> _Costs:
    """Least cost of aligning all of the pattern with a span of the text ending at each j.

    The span may start anywhere, or only at the text's start when `anchored`. Weighted edit
    distance, one row per pattern character, each row vectorised over the text: skipping text
    characters (insertions) is a running minimum over their cumulative cost.
    """
    row = cumsum.copy() if anchored else np.zeros(len(codes) + 1)
    for i in range(len(pattern.codes)):
        if pattern.is_space[i]:
            substitute = np.where(codes == pattern.codes[i], 0.0, pattern.mismatch_costs[i])
        else:
            substitute = np.where(
                codes == pattern.codes[i],
                0.0,
                np.where(classes == pattern.classes[i], _LOOKALIKE_COST, 1.0),
            )
        best = np.empty_like(row)
        best[0] = row[0] + pattern.delete_costs[i]
        best[1:] = np.minimum(row[1:] + pattern.delete_costs[i], row[:-1] + substitute)
        row = cumsum + np.minimum.accumulate(best - cumsum)
    return row


def _match(pattern: _Pattern, frame: _FrameText, threshold: float) -> _Sighting | None:
    """The term's closest occurrence in the frame, or None when none is within reach."""
    max_cost = (1.0 - threshold) * pattern.mass
    if not _could_match(pattern, frame, max_cost):
        return None
    ends = _align_costs(pattern, frame.codes, frame.classes, frame.insert_cumsum)
    end = int(np.argmin(ends))
    cost = float(ends[end])
    similarity = max(0.0, 1.0 - cost / pattern.mass)
    if similarity < threshold:
        return _Sighting(similarity, frame.time_s, "", ())
    # The span's start: the same alignment run backwards from its end.
    head = slice(end - 1, None, -1) if end > 0 else slice(0, 0)
    reversed_pattern = _reversed(pattern)
    codes, classes = frame.codes[head], frame.classes[head]
    inserts = np.array([_SPACE_COST if c == ord(" ") else 1.0 for c in codes])
    starts = _align_costs(
        reversed_pattern,
        codes,
        classes,
        np.concatenate([[0.0], np.cumsum(inserts)]),
        anchored=True,
    )
    start = end - int(np.argmin(starts))
    matched = frame.padded[start:end].strip()
    owners = sorted({int(o) for o in frame.line_of[start:end] if o >= 0})
    return _Sighting(similarity, frame.time_s, matched, tuple(frame.lines[o] for o in owners))


def _reversed(pattern: _Pattern) -> _Pattern:
    return _Pattern(
        term=pattern.term,
        words=pattern.words[::-1],
        codes=pattern.codes[::-1],
        classes=pattern.classes[::-1],
        delete_costs=pattern.delete_costs[::-1],
        mismatch_costs=pattern.mismatch_costs[::-1],
        is_space=pattern.is_space[::-1],
        mass=pattern.mass,
        bigrams=pattern.bigrams,
    )


# --- Reading text --------------------------------------------------------------------------------

OcrEngine = Callable[[Pixels], list[TextLine]]
"""Reads an RGB frame's text lines, in reading order."""


def rapidocr_engine(detect_side: int = 480) -> OcrEngine:
    """RapidOCR's PP-OCRv4 models (bundled, offline), as a typed reader of RGB frames.

    The detector enlarges a frame whose shorter side is under `detect_side` pixels to that size:
    larger finds smaller text and costs time in proportion to the pixels (on two cores, a 640×360
    frame takes about 0.2 s at 360, 0.3 s at 480, 1 s at RapidOCR's own 736). Orientation
    classification is off: captions are upright, and it costs a pass over every line.
    """
    from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped]

    ocr: Any = RapidOCR(
        text_score=0.0,  # OcrScorer filters on its own min_confidence
        use_cls=False,
        det_limit_side_len=detect_side,
        det_limit_type="min",
    )

    def read(rgb: Pixels) -> list[TextLine]:
        # RapidOCR takes arrays as OpenCV's BGR.
        result, _ = ocr(np.ascontiguousarray(rgb[:, :, ::-1]))
        area = float(rgb.shape[0] * rgb.shape[1])
        lines = []
        for box, text, confidence in result or ():
            points = np.asarray(box, dtype=np.float64)
            x0, y0 = points.min(axis=0)
            x1, y1 = points.max(axis=0)
            rect = (int(x0), int(y0), int(x1 - x0 + 0.5), int(y1 - y0 + 0.5))
            lines.append(TextLine(str(text), float(confidence), _polygon_area(points) / area, rect))
        return lines

    return read


def _polygon_area(points: npt.NDArray[np.float64]) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _thumb(rgb: Pixels) -> npt.NDArray[np.int16]:
    grey = Image.fromarray(rgb).convert("L").resize(_THUMB_SIZE, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.int16)


def _nearly_same(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16]) -> bool:
    # A changed caption alters few pixels but alters them a lot: count those, not the mean.
    changed = np.abs(a - b) > _THUMB_CHANGED_LEVEL
    return float(changed.mean()) <= _THUMB_CHANGED_SHARE


def _shrunk(rgb: Pixels, max_side: int) -> Pixels:
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def _picked(count: int, most: int) -> list[int]:
    """Up to `most` indices spread evenly over `count` frames, the first and last included."""
    if count <= most:
        return list(range(count))
    if most <= 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


# --- The scorer ----------------------------------------------------------------------------------


class OcrScorer:
    """Scores a window by watch-listed text on screen (see the module's description)."""

    def __init__(
        self,
        watch_list: Iterable[WatchTerm],
        *,
        min_confidence: float = 0.5,
        max_frames: int = 4,
        match_threshold: float = 0.8,
        max_side: int = 960,
        detect_side: int = 480,
        engine: OcrEngine | None = None,
    ) -> None:
        """`engine` replaces RapidOCR (loaded on first use with `detect_side`) when given."""
        if not 0.0 < match_threshold <= 1.0:
            raise ValueError(f"match_threshold must lie in (0, 1], not {match_threshold}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, not {max_frames}")
        self._patterns = tuple(_Pattern.of(term) for term in watch_list)
        self._min_confidence = min_confidence
        self._max_frames = max_frames
        self._threshold = match_threshold
        self._max_side = max_side
        self._detect_side = detect_side
        self._engine = engine
        self._lock = threading.Lock()
        self._last: tuple[npt.NDArray[np.int16], list[TextLine]] | None = None
        self.ocr_runs = 0
        """Frames actually read so far (the rest reused a nearly identical frame's text)."""

    @property
    def name(self) -> str:
        return "ocr"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    def read_frame(self, rgb: Pixels) -> list[TextLine]:
        """The text lines OCR reads in an RGB frame at or above `min_confidence`, in reading
        order; a frame nearly identical to the last one read gets that one's lines, unread."""
        rgb = _shrunk(rgb, self._max_side)
        thumb = _thumb(rgb)
        with self._lock:
            if self._last is not None and _nearly_same(self._last[0], thumb):
                return list(self._last[1])
            if self._engine is None:
                self._engine = rapidocr_engine(self._detect_side)
            lines = [line for line in self._engine(rgb) if line.confidence >= self._min_confidence]
            self.ocr_runs += 1
            self._last = (thumb, lines)
        return lines

    def score(self, window: ScoringWindow) -> RiskScore:
        """Risk 0..1 that the window shows watch-listed text, with features and evidence.

        Risk is 0 when no term reaches `match_threshold` in any frame read, and never above the
        riskiest matched term's weight.
        """
        chosen = [window.frames[i] for i in _picked(len(window.frames), self._max_frames)]
        frames = [_FrameText.of(t, self.read_frame(rgb)) for t, rgb in chosen]
        found: list[_TermMatch] = []
        best_similarity = 0.0
        for pattern in self._patterns:
            seen = []
            for frame in frames:
                sighting = _match(pattern, frame, self._threshold)
                if sighting is not None:
                    best_similarity = max(best_similarity, sighting.similarity)
                    if sighting.similarity >= self._threshold:
                        seen.append(sighting)
            if seen:
                found.append(_TermMatch(pattern.term, self._term_risk(pattern.term, seen), seen))
        found.sort(key=lambda match: -match.risk)
        matched_times = {s.time_s for match in found for s in match.sightings}
        features = (
            best_similarity,
            max((m.best.similarity * m.term.weight for m in found), default=0.0),
            float(len(matched_times)),
            len(matched_times) / len(frames) if frames else 0.0,
            float(len(found)),
            _mean_confidence(found[0].best.lines) if found else 0.0,
            float(np.mean([f.chars for f in frames])) if frames else 0.0,
            float(np.mean([sum(x.area_share for x in f.lines) for f in frames])) if frames else 0.0,
        )
        evidence: dict[str, object] = {
            "frames_read": [f.time_s for f in frames],
            "screen_text": _screen_text(frames),
            "matches": [match.evidence() for match in found[:_MAX_EVIDENCE_MATCHES]],
        }
        return RiskScore(self.name, found[0].risk if found else 0.0, features, evidence)

    def _term_risk(self, term: WatchTerm, seen: Sequence[_Sighting]) -> float:
        similarity = max(s.similarity for s in seen)
        margin = 1.0 - self._threshold
        closeness = 1.0 if margin <= 0 else min(1.0, (similarity - self._threshold) / margin)
        strength = 0.6 + 0.4 * max(0.0, closeness)
        # Each further frame halves the doubt: a caption that stays is no OCR accident.
        persistence = 1.0 - 0.25 * 0.5 ** (len({s.time_s for s in seen}) - 1)
        return term.weight * strength * persistence


@dataclass(frozen=True)
class _TermMatch:
    """A term's sightings in one window and the risk they add up to."""

    term: WatchTerm
    risk: float
    sightings: Sequence[_Sighting]

    @property
    def best(self) -> _Sighting:
        return max(self.sightings, key=lambda s: s.similarity)

    def evidence(self) -> dict[str, object]:
        best = self.best
        return {
            "term": self.term.text,
            "label": self.term.label,
            "weight": self.term.weight,
            "risk": round(self.risk, 4),
            "similarity": round(best.similarity, 4),
            "matched_text": best.matched,
            "recognised_text": [line.text for line in best.lines],
            "ocr_confidence": round(_mean_confidence(best.lines), 4),
            "frame_times": sorted(s.time_s for s in self.sightings),
        }


def _mean_confidence(lines: Sequence[TextLine]) -> float:
    return float(np.mean([line.confidence for line in lines])) if lines else 0.0


def _screen_text(frames: Sequence[_FrameText]) -> str:
    """The newest frame's text that has any, for a reviewer's glance."""
    for frame in reversed(frames):
        if frame.lines:
            return " / ".join(line.text for line in frame.lines)[:_MAX_EVIDENCE_TEXT]
    return ""
