"""Manipulated copies made with ffmpeg, the way re-uploaders make them.

Two layers: `Manipulation` + `make_variant` (one simple filter chain, used by the demo), and the
benchmark suite: an `Edit` is one manipulation family at one strength; `plan_variant` turns an edit of
a source clip into concrete ffmpeg arguments (plus the true segments for excerpts and compilations),
and `materialise_variant` writes it once into a cache keyed by the inputs' content and the arguments.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from firebreak.errors import FirebreakError


class FfmpegFailed(FirebreakError):
    pass


@dataclass(frozen=True)
class Manipulation:
    """A named ffmpeg edit: input options, filter graph and output options."""

    name: str
    video_filter: str | None = None
    output_args: tuple[str, ...] = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23")
    input_args: tuple[str, ...] = ()


MANIPULATIONS: dict[str, Manipulation] = {
    m.name: m
    for m in (
        Manipulation("reencode_360p_crf35", "scale=-2:360", ("-c:v", "libx264", "-crf", "35")),
        Manipulation("downscale_240p", "scale=-2:240"),
        Manipulation("brightness_contrast", "eq=brightness=0.06:contrast=1.15"),
        Manipulation("greyscale", "hue=s=0"),
        Manipulation("blur", "gblur=sigma=2"),
        Manipulation("noise", "noise=alls=12:allf=t"),
        Manipulation("letterbox", "scale=iw*0.8:-2,pad=iw/0.8:ih/0.8:(ow-iw)/2:(oh-ih)/2"),
        Manipulation("caption_bar", "pad=iw:ih*1.15:0:ih*0.15:color=white"),
        Manipulation("framerate_15", "fps=15"),
    )
}


def run_ffmpeg(args: list[str], timeout_s: float = 600.0) -> None:
    try:
        result = subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise FfmpegFailed(
            f"ffmpeg {' '.join(args)}: still running after {timeout_s:.0f} s"
        ) from None
    if result.returncode != 0:
        raise FfmpegFailed(f"ffmpeg {' '.join(args)}: {result.stderr.strip()[-300:]}")


def make_variant(source: Path, manipulation: Manipulation, dest: Path) -> Path:
    """Write `source` edited by `manipulation` to `dest` (H.264 MP4, audio copied as AAC)."""
    args = [*manipulation.input_args, "-i", str(source)]
    if manipulation.video_filter:
        args += ["-vf", manipulation.video_filter]
    args += [*manipulation.output_args, "-pix_fmt", "yuv420p", "-c:a", "aac", str(dest)]
    run_ffmpeg(args)
    return dest


def make_excerpt(source: Path, start_s: float, duration_s: float, dest: Path) -> Path:
    run_ffmpeg(
        [
            # Seek after -i: slower, but frame-accurate and safe on streams with few keyframes.
            *("-i", str(source), "-ss", f"{start_s}", "-t", f"{duration_s}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-an", "-pix_fmt", "yuv420p", str(dest)),
        ]
    )
    return dest


def concat_clips(parts: list[Path], dest: Path, size: str = "640x360", fps: int = 25) -> Path:
    """Join clips into one video at a common size and rate (video only)."""
    inputs: list[str] = []
    for part in parts:
        inputs += ["-i", str(part)]
    width, height = size.split("x")
    scaled = "".join(
        f"[{i}:v]scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps}[v{i}];"
        for i in range(len(parts))
    )
    joined = "".join(f"[v{i}]" for i in range(len(parts)))
    graph = f"{scaled}{joined}concat=n={len(parts)}:v=1:a=0[out]"
    run_ffmpeg(
        [
            *inputs,
            *("-filter_complex", graph, "-map", "[out]"),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(dest)),
        ]
    )
    return dest


# lavfi sources that fill their first picture at random unless given a seed: a benchmark made
# twice from them must hold the same footage.
_SEEDED_SOURCES = frozenset({"life", "cellauto"})
_LAVFI_SEED = 1


def lavfi_clip(source: str, duration_s: float, dest: Path, size: str = "640x360") -> Path:
    """A synthetic clip from an ffmpeg lavfi source such as `testsrc2`, `mandelbrot`, `life`,
    the same on every run."""
    seed = f":seed={_LAVFI_SEED}" if source in _SEEDED_SOURCES else ""
    run_ffmpeg(
        [
            *("-f", "lavfi", "-i", f"{source}=size={size}:rate=25{seed}", "-t", f"{duration_s}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(dest)),
        ]
    )
    return dest


def ken_burns_clip(image: Path, duration_s: float, dest: Path, size: str = "640x360") -> Path:
    """A slow zoom and pan over a still photograph, as news footage of a still is made."""
    width, height = (int(v) for v in size.split("x"))
    frames = int(duration_s * 25)
    zoom = (
        f"zoompan=z='1+0.5*on/{frames}':x='(iw-iw/zoom)*on/{frames}':y='(ih-ih/zoom)/2'"
        f":d={frames}:s={size}:fps=25"
    )
    graph = f"crop=iw:min(ih\\,iw*{height}/{width}),scale={2 * width}:{2 * height},{zoom}"
    run_ffmpeg(
        [
            *("-i", str(image), "-vf", graph, "-frames:v", str(frames)),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(dest)),
        ]
    )
    return dest


# The benchmark suite.

# drawtext needs a font file; Debian's fonts-dejavu-core puts it here.
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SYMBOL_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# Bumped whenever the way variants are made changes, so the cache does not serve stale files.
SUITE_VERSION = 1


class AudioEdit(enum.StrEnum):
    KEEP = "keep"
    DROP = "drop"
    REPLACE = "replace"


@dataclass(frozen=True)
class Edit:
    """One manipulation family at one strength, as ffmpeg makes it.

    `video` is a linear filter chain applied to the source. `layout`, when set, is a filter graph
    over the labels `[src]` (the source after `video`) and `[other]` (other footage, looped) that
    ends in `[v]`. `excerpt_s` keeps that many seconds of the source; `compilation_s` embeds that many
    seconds of it between pieces of other footage. `speed` is the playback speed the video chain
    applies, so the soundtrack can follow."""

    family: str
    strength: str
    video: str = ""
    layout: str | None = None
    audio: AudioEdit = AudioEdit.KEEP
    speed: float = 1.0
    crf: int = 23
    # x264's fastest preset keeps a full run in budget; re-encodes get what an uploader would use.
    preset: str = "ultrafast"
    excerpt_s: float | None = None
    compilation_s: float | None = None
    unmodified: bool = False

    @property
    def name(self) -> str:
        return f"{self.family}-{self.strength}"

    @property
    def needs_other(self) -> bool:
        return self.compilation_s is not None or (
            self.layout is not None and "[other]" in self.layout
        )


def _caption(text: str, bar: float) -> str:
    """A white bar of `bar` × the height on top, with black text centred in it."""
    return (
        f"pad=iw:ih*{1 + bar}:0:oh-ih:color=white,"
        f"drawtext=fontfile={FONT}:text='{text}':fontcolor=black:fontsize=h*{bar / (1 + bar) * 0.45:.3f}"
        f":x=(w-tw)/2:y=(h*{bar / (1 + bar):.3f}-th)/2"
    )


_MEME = (
    "pad=iw:ih*1.5:0:(oh-ih)/2:color=black,"
    f"drawtext=fontfile={FONT}:text='NOBODY EXPECTED THIS':fontcolor=white:fontsize=h*0.07"
    ":x=(w-tw)/2:y=h*0.08,"
    f"drawtext=fontfile={FONT}:text='SHARE BEFORE IT IS DELETED':fontcolor=white:fontsize=h*0.06"
    ":x=(w-tw)/2:y=h*0.88"
)
_LOGO = (
    "drawbox=x=iw*0.04:y=ih*0.04:w=iw*0.17:h=ih*0.11:color=red@0.85:t=fill,"
    f"drawtext=fontfile={FONT}:text='LIVE':fontcolor=white:fontsize=h*0.07:x=w*0.07:y=h*0.06"
)
_EMOJI = (
    f"drawtext=fontfile={SYMBOL_FONT}:text='☺':fontcolor=yellow:fontsize=h*0.5"
    ":borderw=3:bordercolor=black:x=w*0.58:y=h*0.18,"
    f"drawtext=fontfile={SYMBOL_FONT}:text='☹':fontcolor=yellow:fontsize=h*0.3"
    ":borderw=3:bordercolor=black:x=w*0.08:y=h*0.55"
)


def _screen_recording(warp: float, blur: float, noise: int, glare: float, grid: bool) -> str:
    """Film of a screen playing the video: bezel, perspective, vignette, glare, blur, noise."""
    w = warp
    parts = [
        "scale=640:-2",
        "pad=iw+40:ih+40:20:20:color=0x181818",
        f"perspective=x0=W*{w:.3f}:y0=H*{1.5 * w:.3f}:x1=W*{1 - 0.5 * w:.3f}:y1=0"
        f":x2=W*{0.3 * w:.3f}:y2=H:x3=W*{1 - 1.2 * w:.3f}:y3=H*{1 - w:.3f}:sense=destination",
        "vignette=angle=PI/4",
        f"drawbox=x=iw*0.55:y=ih*0.06:w=iw*0.28:h=ih*0.4:color=white@{glare}:t=fill",
    ]
    if grid:  # the screen's pixel grid beating against the camera's: moiré
        parts.append("drawgrid=w=3:h=3:t=1:c=black@0.25")
    parts += [f"gblur=sigma={blur}", f"noise=alls={noise}:allf=t"]
    return ",".join(parts)


def _vertical(zoom: float) -> str:
    """9:16 frame: the video (zoomed by `zoom`, sides cut) over a blurred copy filling it."""
    return (
        "[src]split[bgsrc][fgsrc];"
        "[bgsrc]scale=360:640:force_original_aspect_ratio=increase,crop=360:640,boxblur=20:2[bg];"
        f"[fgsrc]crop=iw/{zoom}:ih,scale=360:-2[fg];"
        "[bg][fg]overlay=(W-w)/2:(H-h)/2[v]"
    )


def _pip_source_inset(width: int) -> str:
    return (
        "[other]scale=640:360:force_original_aspect_ratio=increase,crop=640:360,setsar=1[bg];"
        f"[src]scale={width}:-2,setsar=1[fg];"
        "[bg][fg]overlay=W-w-20:20:shortest=1[v]"
    )


def _pip_other_inset(share: float) -> str:
    # {height} is the source's height, filled in by plan_variant (scale2ref misjudges it).
    return (
        f"[other]scale=-2:trunc({{height}}*{share}/2)*2,setsar=1[ins];"
        "[src][ins]overlay=W-w-16:H-h-16:shortest=1[v]"
    )


_SIDE_BY_SIDE = (
    "[src]scale=-2:360,setsar=1,fps=25,format=yuv420p[a];[other]scale=-2:360,setsar=1,fps=25,format=yuv420p[b];"
    "[a][b]hstack=inputs=2:shortest=1[v]"
)
_STACKED = (
    "[src]scale=640:-2,setsar=1,fps=25,format=yuv420p[a];[other]scale=640:-2,setsar=1,fps=25,format=yuv420p[b];"
    "[b][a]vstack=inputs=2:shortest=1[v]"
)


def _speed(factor: float) -> str:
    return f"setpts=PTS/{factor}"


SUITE: tuple[Edit, ...] = (
    Edit("original", "as_is", unmodified=True),
    Edit("reencode", "crf38", crf=38, preset="veryfast"),
    Edit("reencode", "crf45", crf=45, preset="veryfast"),
    Edit("downscale", "360p", "scale=-2:360"),
    Edit("downscale", "144p", "scale=-2:144"),
    Edit("flip", "horizontal", "hflip"),
    Edit("flip", "horizontal_crf35", "hflip", crf=35),
    Edit("crop_centred", "6pct", "crop=iw*0.94:ih*0.94"),
    Edit("crop_centred", "20pct", "crop=iw*0.8:ih*0.8"),
    Edit("crop_offcentre", "6pct", "crop=iw*0.94:ih*0.94:0:0"),
    Edit("crop_offcentre", "20pct", "crop=iw*0.8:ih*0.8:iw*0.2:ih*0.05"),
    Edit("letterbox", "15pct", "pad=iw:ih*1.18:0:(oh-ih)/2"),
    Edit("letterbox", "33pct", "pad=iw:ih*1.5:0:(oh-ih)/2"),
    Edit("pillarbox", "15pct", "pad=iw*1.18:ih:(ow-iw)/2:0"),
    Edit("pillarbox", "33pct", "pad=iw*1.5:ih:(ow-iw)/2:0"),
    Edit("vertical_9x16", "fit", layout=_vertical(1.0)),
    Edit("vertical_9x16", "zoom_1.4", layout=_vertical(1.4)),
    Edit("rotate", "2deg", "rotate=2*PI/180:fillcolor=black"),
    Edit("rotate", "5deg", "rotate=5*PI/180:fillcolor=black"),
    Edit("speed", "0.5x", _speed(0.5), speed=0.5),
    Edit("speed", "0.75x", _speed(0.75), speed=0.75),
    Edit("speed", "1.5x", _speed(1.5), speed=1.5),
    Edit("speed", "2x", _speed(2.0), speed=2.0),
    Edit("framerate", "15fps", "fps=15"),
    Edit("framerate", "60fps", "fps=60"),
    Edit("brightness_contrast", "mild", "eq=brightness=0.08:contrast=1.2"),
    Edit("brightness_contrast", "strong", "eq=brightness=-0.15:contrast=0.6"),
    Edit("saturation_hue", "sat1.6_hue20", "hue=h=20:s=1.6"),
    Edit("saturation_hue", "hue90", "hue=h=90"),
    Edit("greyscale", "grey", "hue=s=0"),
    Edit(
        "greyscale",
        "sepia",
        "colorchannelmixer=.393:.769:.189:0:.349:.686:.168:0:.272:.534:.131",
    ),
    Edit("noise", "alls10", "noise=alls=10:allf=t"),
    Edit("noise", "alls30", "noise=alls=30:allf=t"),
    Edit("blur", "sigma2", "gblur=sigma=2"),
    Edit("blur", "sigma6", "gblur=sigma=6"),
    Edit("pixelate", "8px", "pixelize=w=8:h=8"),
    Edit("pixelate", "16px", "pixelize=w=16:h=16"),
    Edit("caption", "top_bar", _caption("when you see it", 0.18)),
    Edit("caption", "meme_bars", _MEME),
    Edit("overlay", "corner_logo", _LOGO),
    Edit("overlay", "large_emoji", _EMOJI),
    Edit("pip_source_inset", "40pct", layout=_pip_source_inset(256)),
    Edit("pip_source_inset", "25pct", layout=_pip_source_inset(160)),
    Edit("pip_other_inset", "25pct", layout=_pip_other_inset(0.25)),
    Edit("pip_other_inset", "40pct", layout=_pip_other_inset(0.4)),
    Edit("reaction_layout", "side_by_side", layout=_SIDE_BY_SIDE),
    Edit("reaction_layout", "stacked", layout=_STACKED),
    Edit("screen_recording", "mild", _screen_recording(0.04, 0.8, 6, 0.12, grid=False)),
    Edit("screen_recording", "strong", _screen_recording(0.1, 1.5, 14, 0.25, grid=True)),
    Edit("excerpt", "4s", excerpt_s=4.0),
    Edit("excerpt", "8s", excerpt_s=8.0),
    Edit("compilation", "4s_inside", compilation_s=4.0),
    Edit("compilation", "8s_inside", compilation_s=8.0),
    Edit("audio", "removed", audio=AudioEdit.DROP),
    Edit("audio", "replaced", audio=AudioEdit.REPLACE),
    Edit("chain", "crop_flip_reencode", "crop=iw*0.9:ih*0.9,hflip", crf=35),
    Edit(
        "chain",
        "letterbox_speed_noise",
        f"pad=iw:ih*1.33:0:(oh-ih)/2,{_speed(1.25)},noise=alls=12:allf=t",
        speed=1.25,
    ),
    Edit(
        "chain",
        "caption_hue_downscale",
        f"{_caption('watch till the end', 0.15)},hue=h=40,scale=-2:240",
    ),
    Edit(
        "chain",
        "offcrop_flip_pillarbox_speed_crf35",
        f"crop=iw*0.9:ih*0.9:0:ih*0.1,hflip,pad=iw*1.3:ih:(ow-iw)/2:0,{_speed(1.5)}",
        speed=1.5,
        crf=35,
    ),
)

# A handful of families for a fast run (tests, --quick).
QUICK_FAMILIES = ("reencode", "flip", "crop_centred", "excerpt", "compilation")


def quick_suite() -> tuple[Edit, ...]:
    """The first strength of each quick family."""
    chosen: dict[str, Edit] = {}
    for edit in SUITE:
        if edit.family in QUICK_FAMILIES and edit.family not in chosen:
            chosen[edit.family] = edit
    return tuple(chosen.values())


@dataclass(frozen=True)
class SourceClip:
    """A media file the suite edits: its length, whether it has sound, and its content digest."""

    path: Path
    duration_s: float
    width: int
    height: int
    has_audio: bool
    digest: str

    @property
    def name(self) -> str:
        return self.path.name


def probe_source(path: Path) -> SourceClip:
    """Duration and audio presence from ffprobe, digest from the bytes."""
    result = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-of", "json"),
            *("-show_entries", "format=duration:stream=codec_type,width,height", str(path)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise FfmpegFailed(f"ffprobe {path}: {result.stderr.strip()[-300:]}")
    info = json.loads(result.stdout)
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise FfmpegFailed(f"ffprobe {path}: no video stream")
    duration = float(info.get("format", {}).get("duration", 0.0))
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    width, height = int(video["width"]), int(video["height"])
    return SourceClip(path, duration, width, height, has_audio, file_digest(path))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class VariantPlan:
    """One edit of one source, ready to make: ffmpeg arguments (inputs as placeholders), the cache
    key, and, for excerpts and compilations, where the source's piece sits in the copy (query
    segment) and in the source (item segment)."""

    edit: Edit
    source: SourceClip
    other: SourceClip | None
    args: tuple[str, ...]
    key: str
    query_segment: tuple[float, float] | None = None
    item_segment: tuple[float, float] | None = None

    @property
    def name(self) -> str:
        return f"{self.source.name}:{self.edit.name}"

    def path(self, cache_dir: Path) -> Path:
        if self.edit.unmodified:
            return self.source.path
        return cache_dir / f"{self.source.path.stem}--{self.edit.name}--{self.key[:12]}.mp4"


_SRC = "{source}"
_OTHER = "{other}"
_NORMALISE = "scale=trunc(iw/2)*2:trunc(ih/2)*2,setsar=1,format=yuv420p"
_COMPILATION_FRAME = (
    "scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,"
    "setsar=1,fps=25,format=yuv420p"
)
# Seconds of other footage before and after the source's piece in a compilation.
COMPILATION_PADDING_S = (3.0, 3.0)


def plan_variant(edit: Edit, source: SourceClip, other: SourceClip | None) -> VariantPlan:
    """The ffmpeg arguments that make `edit` of `source` (with `other` footage where it needs it)."""
    if edit.needs_other and other is None:
        raise ValueError(f"{edit.name} needs other footage")
    used_other = other if edit.needs_other else None
    if edit.unmodified:
        return VariantPlan(edit, source, None, (), _plan_key(source, None, ()))
    inputs = ["-i", _SRC]
    # Other footage loops to cover the source; an input without an end keeps some filters running.
    cover = f"{source.duration_s + sum(COMPILATION_PADDING_S) + 1:.3f}"
    if used_other is not None:
        inputs += ["-stream_loop", "-1", "-t", cover, "-i", _OTHER]
    query_segment = item_segment = None
    output: list[str] = []
    if edit.compilation_s is not None:
        length, start = _piece(source.duration_s, edit.compilation_s)
        before, after = COMPILATION_PADDING_S
        graph = (
            "[1:v]split[o1][o2];"
            f"[o1]trim=duration={before},setpts=PTS-STARTPTS,{_COMPILATION_FRAME}[p0];"
            f"[0:v]trim=start={start:.3f}:duration={length:.3f},setpts=PTS-STARTPTS,"
            f"{_COMPILATION_FRAME}[p1];"
            f"[o2]trim=start={before}:duration={after},setpts=PTS-STARTPTS,{_COMPILATION_FRAME}[p2];"
            "[p0][p1][p2]concat=n=3:v=1:a=0[out]"
        )
        query_segment = (before, before + length)
        item_segment = (start, start + length)
        audio = AudioEdit.DROP  # the pieces' soundtracks are not joined
    else:
        chain = edit.video or "null"
        if edit.layout is not None:
            other_in = "[1:v]setsar=1[other];" if used_other is not None else ""
            layout = edit.layout.replace("{height}", str(source.height))
            graph = f"[0:v]{chain}[src];{other_in}{layout};[v]{_NORMALISE}[out]"
        else:
            graph = f"[0:v]{chain},{_NORMALISE}[out]"
        audio = edit.audio
        if edit.excerpt_s is not None:
            length, start = _piece(source.duration_s, edit.excerpt_s)
            output += ["-ss", f"{start:.3f}", "-t", f"{length:.3f}"]
            query_segment = (0.0, length)
            item_segment = (start, start + length)
    audio_args: list[str] = []
    if audio is AudioEdit.KEEP and source.has_audio:
        audio_args = ["-map", "0:a", "-c:a", "aac", "-b:a", "96k"]
        if edit.speed != 1.0:
            audio_args += ["-af", f"atempo={edit.speed}"]
    elif audio is AudioEdit.REPLACE:
        index = 2 if used_other is not None else 1
        inputs += [
            "-f",
            "lavfi",
            "-t",
            cover,
            "-i",
            "anoisesrc=color=pink:amplitude=0.2:sample_rate=44100",
        ]
        audio_args = [*("-map", f"{index}:a", "-c:a", "aac", "-b:a", "96k", "-shortest")]
    video_args = ["-c:v", "libx264", "-preset", edit.preset, "-crf", str(edit.crf)]
    # An upload's bitrate is capped (by the uploader's app or the platform); without a cap, noise
    # makes files of 100 MB that no platform would serve.
    video_args += ["-maxrate", "3M", "-bufsize", "6M"]
    args = (
        *inputs,
        *("-filter_complex", graph, "-map", "[out]"),
        *output,
        *video_args,
        *audio_args,
        *("-threads", "1", "-movflags", "+faststart"),
    )
    return VariantPlan(
        edit, source, used_other, args, _plan_key(source, used_other, args),
        query_segment, item_segment,
    )  # fmt: skip


def _piece(duration_s: float, wanted_s: float) -> tuple[float, float]:
    """Length and start of a piece of about `wanted_s` seconds starting 30 % into the source."""
    length = min(wanted_s, duration_s)
    start = max(0.0, min(duration_s * 0.3, duration_s - length))
    return round(length, 3), round(start, 3)


def _plan_key(source: SourceClip, other: SourceClip | None, args: tuple[str, ...]) -> str:
    material = json.dumps(
        [SUITE_VERSION, source.digest, other.digest if other else None, list(args)]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def materialise_variant(plan: VariantPlan, cache_dir: Path) -> Path:
    """The variant's file, made with ffmpeg unless the cache already holds it."""
    dest = plan.path(cache_dir)
    if dest.exists():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f"{dest.stem}.{os.getpid()}.part.mp4")
    paths = {_SRC: str(plan.source.path), _OTHER: str(plan.other.path) if plan.other else ""}
    args = [paths.get(a, a) for a in plan.args]
    try:
        run_ffmpeg([*args, str(partial)])
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest
