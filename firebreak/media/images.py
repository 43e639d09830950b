"""Still images, decoded with Pillow so that PDQ sees the same pixels as the reference tools."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.errors import MediaRejected
from firebreak.media.probe import check_pixel_count
from firebreak.settings import Settings


def load_image_rgb(path: Path, settings: Settings) -> npt.NDArray[np.uint8]:
    """Decode an image to an H×W×3 uint8 array, refusing bombs and truncated files."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                check_pixel_count(path, img.width, img.height, settings.max_image_pixels)
                rgb = img.convert("RGB")
    except Image.DecompressionBombError:
        raise MediaRejected(path, "image dimensions exceed the decompression limit") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaRejected(path, f"corrupt or truncated image ({exc})") from None
    return np.asarray(rgb, dtype=np.uint8)
