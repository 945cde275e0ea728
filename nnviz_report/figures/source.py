"""What raster figures are drawn from, in a form report.json can hold exactly.

Pixels (a sample's RGB thumbnail, a feature map or heat map quantised to 0–255) are kept as a
PNG, base64 in a JSON string: lossless, two to four times smaller than a list of integers, and
the same array comes back bit for bit, so a figure drawn from the decoded source in ``render``
has the bytes the pipeline drew from the same source. Numbers that must survive the JSON round
trip exactly are kept as Python floats (``repr`` round-trips) and ints, never numpy scalars.
"""

from __future__ import annotations

import base64
import binascii
import io
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import SchemaError

_MODES = {2: "L", 3: "RGB"}
MAX_SOURCE_PIXELS = 4096 * 4096
# Weight values kept for the violins: 4095 steps between the tensor's extremes. A step is far below
# a pixel of the shared axis and of the kernel density's bandwidth, and costs half the bytes of 65535.
VALUE_LEVELS = 4095
# Beyond this many points along a depth axis, a marker (or a minor tick) per point is closer than
# its own size to the next: it only thickens the line, and each one is an element the PDF's
# renderer draws separately (DenseNet-121's five depth charts held 2 500 of them, 2.3 s of its PDF).
# As many weight violins are drawn as one embedded image; the caption says so (render/html.py).
MARKED_POINTS = 100


def encode_pixels(pixels: np.ndarray) -> str:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` as base64 PNG text."""
    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    if array.ndim not in _MODES or (array.ndim == 3 and array.shape[2] != 3) or 0 in array.shape:
        raise ValueError(f"cannot encode pixels of shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array, mode=_MODES[array.ndim]).save(buffer, format="PNG", compress_level=9)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_pixels(text: str, where: str, *, channels: int | None = None) -> np.ndarray:
    """The uint8 array behind :func:`encode_pixels`; ``channels`` 1 for ``(H, W)``, 3 for RGB.
    Anything else is a one-line :class:`SchemaError` naming ``where`` (a field path)."""
    if not text:
        raise SchemaError(f"report.json: {where} is empty: the figure's source was not recorded; "
                          "re-run nnviz-report report to re-create the archive")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(text, validate=True)), formats=["PNG"])
        # An archive is untrusted input: a small PNG can claim gigapixels. Nothing drawn is that large.
        if image.width * image.height > MAX_SOURCE_PIXELS:
            raise ValueError("too large")
        image.load()
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError, Image.DecompressionBombError):
        raise SchemaError(f"report.json: {where} is not a base64 PNG image of at most {MAX_SOURCE_PIXELS} pixels; "
                          "the file is damaged or was not written by nnviz_report") from None
    expected = {1: "L", 3: "RGB", None: image.mode}[channels]
    if image.mode != expected or image.mode not in ("L", "RGB"):
        raise SchemaError(f"report.json: {where} is a {image.mode} image where {expected} was expected; the file "
                          "is damaged or was not written by nnviz_report")
    return np.asarray(image, dtype=np.uint8)


def quantise_unit(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as uint8 levels 0–255 (NaN low, out-of-range clipped): the index into a
    256-colour map that :func:`figures.common.colourise` would use."""
    scaled = np.nan_to_num(np.asarray(values, dtype=np.float64) * 255, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(scaled.round(), 0, 255).astype(np.uint8)


def encode_values(values: np.ndarray) -> tuple[float, float, int, str]:
    """Finite values for a distribution figure, which depends on their multiset only: sorted,
    quantised to ``VALUE_LEVELS`` steps between their extremes, delta-encoded (16-bit) and
    compressed. Returns (low, high, count, base64 text)."""
    finite = np.sort(np.asarray(values, dtype=np.float64).ravel())
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 0.0, 0, ""
    low, high = float(finite[0]), float(finite[-1])
    span = high - low
    levels = np.zeros(finite.size, dtype=np.int64) if span == 0 else np.round((finite - low) / span * VALUE_LEVELS)
    deltas = np.diff(levels.astype(np.int64), prepend=0).astype(">u2")
    return low, high, int(finite.size), base64.b64encode(zlib.compress(deltas.tobytes(), 9)).decode("ascii")


def decode_values(low: float, high: float, count: int, text: str, where: str) -> np.ndarray:
    """The float64 values behind :func:`encode_values`, ascending."""
    if count == 0:
        return np.zeros(0)
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(text, validate=True), 2 * count + 1)
        if len(raw) != 2 * count or not inflater.eof:
            raise ValueError("wrong length")
    except (binascii.Error, ValueError, zlib.error):
        raise SchemaError(f"report.json: {where} does not hold {count} compressed values; the file is damaged or "
                          "was not written by nnviz_report") from None
    levels = np.cumsum(np.frombuffer(raw, dtype=">u2").astype(np.int64))
    if levels[-1] > VALUE_LEVELS:
        raise SchemaError(f"report.json: {where} holds values beyond its range; the file is damaged")
    return low + levels * ((high - low) / VALUE_LEVELS)
