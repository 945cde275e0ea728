"""report.json: every number the HTML shows, deterministic bytes, strictly valid JSON."""

from __future__ import annotations

import json

from ..report_model import Report, to_jsonable


def render_json(report: Report) -> str:
    return json.dumps(to_jsonable(report), indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
