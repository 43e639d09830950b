"""Manipulated copies made with ffmpeg, the way re-uploaders make them."""

from __future__ import annotations

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


def run_ffmpeg(args: list[str]) -> None:
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        check=False,
    )
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


def lavfi_clip(source: str, duration_s: float, dest: Path, size: str = "640x360") -> Path:
    """A synthetic clip from an ffmpeg lavfi source such as `testsrc2`, `mandelbrot`, `life`."""
    run_ffmpeg(
        [
            *("-f", "lavfi", "-i", f"{source}=size={size}:rate=25", "-t", f"{duration_s}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(dest)),
        ]
    )
    return dest
