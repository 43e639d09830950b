"""Live sources: RTMP, HLS and SRT streams, and local files played at real-time speed.

A stream is read as it arrives: sampled pictures (luma, small) and the soundtrack (mono PCM at
16 kHz) come out in stream order, timed in seconds from the stream's first frame. A stream is
endless by nature, so the limits that matter are per frame (pixel count, decode errors in a row)
and per read (a stalled source times out); how long to watch is the caller's choice.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

import av
import numpy as np
import numpy.typing as npt

from firebreak.errors import MediaRejected, StreamFailed
from firebreak.media.decode import AUDIO_SAMPLE_RATE, FrameSampler, grey_pixels
from firebreak.media.probe import check_pixel_count
from firebreak.settings import Settings

_NETWORK_SCHEMES = frozenset({"rtmp", "rtmps", "srt", "http", "https", "udp", "rtp", "rtsp", "tcp"})
# Start within a second: probe little, buffer nothing.
_NETWORK_PROBE = {"analyzeduration": "1000000", "probesize": "500000"}
_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-fA-F]+\] ")
_STDERR_LINES = 20  # the last lines of an SRT reader's stderr kept, to say why it stopped
_STDERR_LINE_CHARS = 500


@dataclass(frozen=True)
class StreamPicture:
    """A sampled frame: its time in seconds from the stream's start, and its luma, small."""

    stream_time: float
    pixels: npt.NDArray[np.uint8]


@dataclass(frozen=True)
class StreamSound:
    """A run of the soundtrack: the stream time of its first sample, and mono PCM at 16 kHz."""

    stream_time: float
    samples: npt.NDArray[np.float32]


@dataclass(frozen=True)
class StreamColour:
    """A colour frame for scorers: its stream time and H×W×3 RGB pixels."""

    stream_time: float
    pixels: npt.NDArray[np.uint8]


def is_network_source(source: str) -> bool:
    """Whether `source` is a URL to a stream rather than a path to a local file."""
    return urlparse(source).scheme.lower() in _NETWORK_SCHEMES


def read_stream(
    source: str,
    settings: Settings,
    fps: float,
    size: int,
    *,
    realtime: bool,
    record_to: Path | None = None,
    colour_fps: float = 0.0,
    colour_size: int = 640,
) -> Iterator[StreamPicture | StreamSound | StreamColour]:
    """Pictures sampled `fps` times a second and the soundtrack of `source`, as they arrive.

    With `realtime`, a local file is played at its own pace, as a publisher would send it; a
    network stream always arrives at its own pace. With `record_to`, every packet is also
    appended there as MPEG-TS, so that a reconnected stream goes on in the same recording and
    any prefix of the recording is a playable file. With `colour_fps`, colour frames (longer side
    `colour_size`) come out that often too, for scorers that need colour and detail (models, OCR).
    Returns when the stream ends; raises
    StreamFailed when it cannot be opened, stalls past the read timeout, or sends frames that
    break a limit or fail to decode many times in a row.

    An SRT stream is read by a child `ffmpeg` (PyAV's FFmpeg has no libsrt) that connects as the
    caller and relays the stream as MPEG-TS through a pipe; the child ends with the generator.
    """
    feed = _SrtFeed(source, settings) if _is_srt(source) else None
    try:
        container = _open(source, settings, feed)
        with container:
            if not container.streams.video:
                raise StreamFailed(source, "no video stream")
            video = container.streams.video[0]
            # One thread per stream: decoding threads would add frames of latency, and many
            # streams already share the cores.
            video.thread_type = "SLICE"
            video.thread_count = 1
            video.codec_context.options = {"skip_loop_filter": "all", "skip_frame": "noref"}
            streams: list[av.stream.Stream] = [video]
            if container.streams.audio:
                streams.append(container.streams.audio[0])
            recorder = _Recorder(record_to, streams) if record_to is not None else None
            try:
                # A network stream arrives at its own pace; only a local file is paced here.
                paced = realtime and not is_network_source(source)
                packets = _demux(container, streams, source, recorder)
                yield from _decode_packets(
                    source, settings, packets, (fps, size), (colour_fps, colour_size), paced
                )
            finally:
                if recorder is not None:
                    recorder.close()
        if feed is not None:
            # The relay's output ended: a closed connection is how an SRT stream ends; anything
            # else (a timeout, an error) is a failure.
            reason = feed.why_ended()
            if reason is not None:
                raise StreamFailed(source, reason)
    finally:
        if feed is not None:
            feed.close()


def _decode_packets(
    source: str,
    settings: Settings,
    packets: Iterator[av.Packet[av.stream.Stream]],
    luma: tuple[float, int],
    colour: tuple[float, int],
    realtime: bool,
) -> Iterator[StreamPicture | StreamSound | StreamColour]:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE)
    (fps, size), (colour_fps, colour_size) = luma, colour
    sampler = FrameSampler(fps)
    colour_sampler = FrameSampler(colour_fps) if colour_fps > 0 else None
    frame_period: float | None = None
    # RTMP timestamps count from the moment the publisher started, whenever we joined: kept
    # as they are, stream times are the publisher's. Other sources count from their first frame.
    first_time: float | None = 0.0 if source.lower().startswith("rtmp") else None
    started: float | None = None
    errors_in_a_row = 0
    for packet in packets:
        if frame_period is None and packet.stream.type == "video":
            rate = packet.stream.average_rate or packet.stream.guessed_rate
            frame_period = 1.0 / float(rate) if rate else 1.0 / 25
        try:
            decoded = packet.decode()
        except av.error.FFmpegError:
            errors_in_a_row += 1
            if errors_in_a_row > settings.max_decode_errors:
                raise StreamFailed(
                    source, f"more than {settings.max_decode_errors} decode errors in a row"
                ) from None
            continue
        errors_in_a_row = 0
        for frame in decoded:
            if not isinstance(frame, av.VideoFrame | av.AudioFrame) or frame.time is None:
                continue
            if first_time is None:
                first_time = frame.time
            t = max(0.0, frame.time - first_time)
            if realtime:
                started = time.monotonic() - t if started is None else started
                _wait_until(started + t)
            if isinstance(frame, av.AudioFrame):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.float32)
                    yield StreamSound(round(t, 3), samples)
                continue
            _check_picture_size(source, frame, settings)
            period = frame_period or 1.0 / 25
            if sampler.wants(t, period):
                yield StreamPicture(round(t, 3), grey_pixels(frame, size))
            if colour_sampler is not None and colour_sampler.wants(t, period):
                yield StreamColour(round(t, 3), _colour_pixels(frame, colour_size))


def _colour_pixels(frame: av.VideoFrame, longest: int) -> npt.NDArray[np.uint8]:
    scale = min(1.0, longest / max(frame.width, frame.height))
    width = max(2, round(frame.width * scale / 2) * 2)
    height = max(2, round(frame.height * scale / 2) * 2)
    small = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    return np.asarray(small.to_ndarray(), dtype=np.uint8)


class _Recorder:
    """The stream's packets, copied as they are into an MPEG-TS file."""

    def __init__(self, path: Path, streams: list[av.stream.Stream]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._output = av.open(self._file, mode="w", format="mpegts")
        self._streams = {s.index: self._output.add_stream_from_template(s) for s in streams}

    def write(self, packet: av.Packet[av.stream.Stream]) -> None:
        target = self._streams.get(packet.stream.index)
        if target is None or packet.dts is None:
            return
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        copy.is_keyframe = packet.is_keyframe
        copy.stream = target
        self._output.mux(copy)

    def close(self) -> None:
        try:
            self._output.close()
        finally:
            self._file.close()


def _open(source: str, settings: Settings, feed: _SrtFeed | None) -> av.container.InputContainer:
    if feed is not None:
        try:
            return av.open(feed.output, mode="r", format="mpegts", options=dict(_NETWORK_PROBE))
        except (av.error.FFmpegError, OSError) as exc:
            reason = f"cannot open ({exc})"
            if feed.exited(within_s=2.0):  # what it read ended: the child says why
                reason = feed.why_ended() or "the connection closed before any media arrived"
            raise StreamFailed(source, reason) from None
    network = is_network_source(source)
    if not network and not Path(source).is_file():
        raise StreamFailed(source, "no such file")
    options = {}
    if network:
        options = dict(_NETWORK_PROBE)
        if source.lower().startswith("rtmp"):
            options["rtmp_live"] = "live"
    try:
        return av.open(
            source,
            mode="r",
            options=options,
            timeout=(settings.live_open_timeout_s, settings.live_read_timeout_s),
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise StreamFailed(source, f"cannot open ({exc})") from None


def _is_srt(source: str) -> bool:
    return urlparse(source).scheme.lower() == "srt"


class _SrtFeed:
    """A child `ffmpeg` that reads an SRT stream as the caller and relays it, packets copied as
    they are, as MPEG-TS on its stdout; the last lines of its stderr say why it stopped.

    SRT's own timeouts end the child: `live_open_timeout_s` to connect (or, for a URL that asks
    to listen, to be called), `live_read_timeout_s` without data once connected. Options in the
    URL's query take precedence over these.
    """

    def __init__(self, source: str, settings: Settings) -> None:
        self._source = source
        self._settings = settings
        program = _srt_ffmpeg(source)
        open_us = round(settings.live_open_timeout_s * 1e6)
        read_us = round(settings.live_read_timeout_s * 1e6)
        command = [
            program,
            *("-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"),
            *("-analyzeduration", _NETWORK_PROBE["analyzeduration"]),
            *("-probesize", _NETWORK_PROBE["probesize"]),
            *("-connect_timeout", str(open_us // 1000), "-listen_timeout", str(open_us)),
            *("-timeout", str(read_us)),
            *("-i", source),
            *("-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy"),
            *("-f", "mpegts", "-flush_packets", "1", "pipe:1"),
        ]
        # Unbuffered: a read returns what the pipe holds, never waits for a full buffer.
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
            )
        except OSError as exc:
            raise StreamFailed(source, f"cannot start {program} ({exc})") from None
        assert self._process.stdout is not None and self._process.stderr is not None
        self.output: IO[bytes] = self._process.stdout
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._stderr_lock = threading.Lock()
        self._stderr_reader = threading.Thread(
            target=self._keep_stderr, args=(self._process.stderr,), daemon=True
        )
        self._stderr_reader.start()

    def exited(self, within_s: float) -> bool:
        """Whether the child has exited, or does within `within_s` seconds."""
        try:
            self._process.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def why_ended(self) -> str | None:
        """Why the child's output ended, once it has exited: None when the peer closed the
        connection (how an SRT stream ends), else a one-line reason."""
        try:
            code = self._process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            return "the SRT reader stopped sending but did not exit"
        self._stderr_reader.join(timeout=1.0)
        with self._stderr_lock:
            lines = list(self._stderr)
        return _srt_failure(lines, code, self._source, self._settings)

    def close(self) -> None:
        """Ends the child (politely first, so that it closes the connection) and reaps it."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self.output.close()
        self._stderr_reader.join(timeout=1.0)

    def _keep_stderr(self, stream: IO[bytes]) -> None:
        with stream:
            while line := stream.readline(_STDERR_LINE_CHARS):
                text = line.decode("utf-8", "replace").strip()
                if text:
                    with self._stderr_lock:
                        self._stderr.append(text)


def _srt_ffmpeg(source: str) -> str:
    """The `ffmpeg` program on PATH, when it can read SRT."""
    program = shutil.which("ffmpeg")
    if program is None:
        raise StreamFailed(source, "reading SRT needs the ffmpeg program, and none is on PATH")
    if "srt" not in _input_protocols(program):
        raise StreamFailed(source, f"{program} cannot read SRT (it was built without libsrt)")
    return program


@functools.cache
def _input_protocols(program: str) -> frozenset[str]:
    """The protocols that the `ffmpeg` at `program` reads (none when it cannot be run)."""
    try:
        listing = subprocess.run(
            [program, "-hide_banner", "-protocols"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    names: set[str] = set()
    reading = False
    for line in listing.splitlines():
        if line.strip().endswith(":"):
            reading = line.strip() == "Input:"
        elif reading and line.strip():
            names.add(line.strip())
    return frozenset(names)


def _srt_failure(lines: Sequence[str], code: int, source: str, settings: Settings) -> str | None:
    """One line for why an SRT reader exited, from its exit code and last lines of stderr; None
    when it only lost the connection (the peer closed it, or went silent) and exited cleanly."""
    messages: list[str] = []
    for line in lines:
        text = _LOG_PREFIX.sub("", line).removeprefix(f"{source}: ").strip()
        if text and text not in messages:
            messages.append(text)
    if any(re.match(r"Connection to .* failed", m) for m in messages):
        return (
            f"cannot connect: no SRT listener answered within "
            f"{settings.live_open_timeout_s:g} s, or it refused the call"
        )
    if "Connection timed out" in messages:
        return f"no data for {settings.live_read_timeout_s:g} s (SRT read timed out)"
    if code < 0:
        return f"the SRT reader was killed by signal {-code}"
    specific = [m for m in messages if m != "Input/output error"]
    if code == 0 and not specific:
        return None
    reason = "; ".join(specific or messages) or f"the SRT reader exited with status {code}"
    return reason if len(reason) <= 300 else reason[:299] + "…"


def _demux(
    container: av.container.InputContainer,
    streams: list[av.stream.Stream],
    source: str,
    recorder: _Recorder | None,
) -> Iterator[av.Packet[av.stream.Stream]]:
    """The container's packets until the stream ends (recorded first, when recording); a read
    that fails midway is a failure."""
    packets = container.demux(*streams)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.ExitError, av.error.EOFError, EOFError):
            return  # the publisher stopped: how a live stream ends
        except (av.error.FFmpegError, OSError) as exc:
            raise StreamFailed(source, f"read failed ({exc})") from None
        if packet.size == 0:
            continue  # a flush packet
        if recorder is not None:
            recorder.write(packet)
        yield packet


def _check_picture_size(source: str, frame: av.VideoFrame, settings: Settings) -> None:
    try:
        check_pixel_count(Path(source), frame.width, frame.height, settings.max_video_pixels)
    except MediaRejected as exc:
        raise StreamFailed(source, exc.reason) from None


def _wait_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
