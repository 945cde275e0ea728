"""In-page anchors for layers and parameters: readable, unique, and safe whatever the names."""

from __future__ import annotations

import re
from collections.abc import Iterable


class Anchors:
    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._by_key: dict[tuple[str, str], str] = {}

    def __call__(self, prefix: str, name: str) -> str:
        key = (prefix, name)
        if key in self._by_key:
            return self._by_key[key]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80] or "x"
        anchor, n = f"{prefix}-{slug}", 2
        while anchor in self._taken:
            anchor, n = f"{prefix}-{slug}-{n}", n + 1
        self._taken.add(anchor)
        self._by_key[key] = anchor
        return anchor

    @classmethod
    def recorded(cls, entries: Iterable[tuple[str, str, str]]) -> Anchors:
        """The anchors a report recorded, as (prefix, name, anchor): lookups as in the run that made
        them, for drawing its figures again from report.json."""
        anchors = cls()
        for prefix, name, anchor in entries:
            anchors._by_key.setdefault((prefix, name), anchor)
            anchors._taken.add(anchor)
        return anchors

    def lookup(self, prefix: str, name: str) -> str | None:
        return self._by_key.get((prefix, name))
