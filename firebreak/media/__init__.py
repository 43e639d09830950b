"""Decoding with limits: probing, sampled frames at a small size, PCM audio; hostile input refused."""

from firebreak.media.decode import DecodedVideo, SampledFrame, VideoFrames, decode_video
from firebreak.media.images import load_image_rgb
from firebreak.media.probe import MediaInfo, MediaKind, probe_media

__all__ = [
    "DecodedVideo",
    "MediaInfo",
    "MediaKind",
    "SampledFrame",
    "VideoFrames",
    "decode_video",
    "load_image_rgb",
    "probe_media",
]
