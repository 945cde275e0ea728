"""One base error for everything the user can fix; the CLI turns each into one line and exit 2.

:func:`one_line` is the one helper that makes user-controlled text (module names, state_dict
keys, file names, archive fields, exception texts from torch or the user's own code) safe to
print inside a one-line message: a newline or an ANSI escape in a key must not add a line, move
the cursor, or forge a CI annotation such as ``::error``.
"""

from __future__ import annotations

import unicodedata

# Characters that end a line, move the cursor or reorder text in a terminal or a CI log, beyond
# the C0/C1 controls: Unicode line and paragraph separators and the bidirectional overrides.
_INVISIBLE_FORMAT = frozenset("\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(value: object, limit: int | None = None) -> str:
    """``value`` as printable text on one line: control characters, line separators and
    bidirectional overrides escaped as ``\\n``, ``\\x1b``, ``\\u202e``; a lone surrogate — what
    Python makes of a non-UTF-8 byte in a file name — as the byte it stands for (``\\xff``) or as
    ``\\udXXX``; bytes decoded as UTF-8 with the same escapes. ``limit`` cuts long text with "…"."""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "surrogateescape")
    else:
        try:
            text = value if isinstance(value, str) else str(value)
        except Exception:  # a user object whose __str__ raises
            text = f"<{type(value).__name__}>"
    parts = []
    for char in text:
        code = ord(char)
        if char in _NAMED:
            parts.append(_NAMED[char])
        elif 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            parts.append(f"\\x{code:02x}")
        elif char in _INVISIBLE_FORMAT or unicodedata.category(char) == "Cs":
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(char)
    result = "".join(parts)
    if limit is not None and len(result) > limit:
        result = result[: max(limit - 1, 0)] + "…"
    return result


def quoted(value: object, limit: int | None = 120) -> str:
    """``value`` made one line by :func:`one_line` and put in single quotes, for names inside messages."""
    return f"'{one_line(value, limit)}'"


class NNVizError(Exception):
    """Bad input or an environment problem the user can fix. The message is one line:
    what is wrong, and what to do about it."""


class ConfigError(NNVizError):
    """An option or setting has a value that cannot be used."""


class DataError(NNVizError):
    """The sample set cannot be read or does not have the CIFAR-10 layout."""


class ModelError(NNVizError):
    """The model spec, its weights or its behaviour on 32×32 input are unusable."""


class CheckpointError(ModelError):
    """A checkpoint file is missing, corrupt, unsafe to unpickle, or does not fit the model."""


class CaptureError(NNVizError):
    """The model failed while the capture pass ran it."""


class OutputError(NNVizError):
    """The report cannot be written where it was asked to go."""


class SchemaError(NNVizError):
    """An archived report.json has a schema this version cannot read."""


class CompareError(NNVizError):
    """The two sides of a comparison do not describe the same model on the same sample."""
