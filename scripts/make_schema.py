"""Generate the JSON Schema of report.json from the report model's dataclasses.

    python scripts/make_schema.py            # check: exit 1 if the committed schema is out of date
    python scripts/make_schema.py --update   # rewrite nnviz_report/schema/report-<version>.schema.json

The schema follows ``report_model.to_jsonable``: every dataclass becomes a closed object
(``additionalProperties: false``, every field required), tuples become arrays, figures become
``{"figure": name}``, and every float may be null because non-finite values are written as null.
Field comments in the dataclass source become descriptions. A field typed ``Any`` is emitted as
``{}`` (anything) so a new section never breaks the generator.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nnviz_report.report_model import SCHEMA_VERSION, Figure, Report  # noqa: E402

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = ROOT / "nnviz_report" / "schema"


def schema_path(version: str = SCHEMA_VERSION) -> Path:
    return SCHEMA_DIR / f"report-{version}.schema.json"


class _Generator:
    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        self.names: dict[type, str] = {}

    def ref(self, cls: type) -> dict[str, Any]:
        if cls not in self.names:
            name = cls.__name__
            if name in self.names.values():  # same class name in two modules
                name = f"{cls.__module__.rpartition('.')[2]}.{name}"
            self.names[cls] = name
            self.defs[name] = {}  # placeholder: breaks cycles
            self.defs[name] = self.figure() if cls is Figure else self.dataclass(cls)
        return {"$ref": f"#/$defs/{self.names[cls]}"}

    @staticmethod
    def figure() -> dict[str, Any]:
        return {
            "description": "A figure of the HTML report, named here; its bytes are not part of report.json.",
            "type": "object",
            "properties": {"figure": {"type": "string"}},
            "required": ["figure"],
            "additionalProperties": False,
        }

    def dataclass(self, cls: type) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        comments = _field_comments(cls)
        properties: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if cls is Report and f.name == "schema_version":
                prop: dict[str, Any] = {"const": SCHEMA_VERSION}
            else:
                prop = dict(self.type(hint))
            if f.name in comments:
                prop = {"description": comments[f.name], **prop}
            properties[f.name] = prop
        schema: dict[str, Any] = {}
        doc = inspect.cleandoc(cls.__doc__ or "")
        if doc and not doc.startswith(f"{cls.__name__}("):  # not the docstring dataclass makes up
            schema["description"] = " ".join(doc.split())
        schema |= {"type": "object", "properties": properties, "required": list(properties),
                   "additionalProperties": False}
        return schema

    def type(self, hint: Any) -> dict[str, Any]:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is Any:
            return {}
        if hint is type(None):
            return {"type": "null"}
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer"}
        if hint is float:  # non-finite floats are written as null
            return {"type": ["number", "null"]}
        if hint is str:
            return {"type": "string"}
        if origin in (typing.Union, types.UnionType):
            options = [self.type(a) for a in args]
            if all(set(o) == {"type"} for o in options):
                merged: list[str] = []
                for o in options:
                    for t in o["type"] if isinstance(o["type"], list) else [o["type"]]:
                        if t not in merged:
                            merged.append(t)
                return {"type": merged[0] if len(merged) == 1 else merged}
            if {} in options:
                return {}
            return {"anyOf": options}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.type(args[0])}
            if not args:
                return {"type": "array"}
            return {"type": "array", "prefixItems": [self.type(a) for a in args], "items": False,
                    "minItems": len(args), "maxItems": len(args)}
        if origin in (list, typing.Sequence) or hint is list:
            return {"type": "array", "items": self.type(args[0]) if args else {}}
        if origin is dict or hint is dict:
            return {"type": "object", "additionalProperties": self.type(args[1]) if args else {}}
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.ref(hint)
        raise TypeError(f"make_schema: no JSON Schema for the type {hint!r}; teach _Generator.type about it")


_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")
_CONTINUATION = re.compile(r"^\s+#\s*(.+?)\s*$")


def _field_comments(cls: type) -> dict[str, str]:
    """Comments of ``cls``'s fields, those it inherits from dataclass bases included."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update(_own_field_comments(klass))
    return comments


def _own_field_comments(cls: type) -> dict[str, str]:
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments = {}
    last = None  # a field comment continues on following lines that hold only a comment
    for line in source.splitlines():
        match = _COMMENT.match(line)
        more = _CONTINUATION.match(line)
        if match:
            last = match.group(1)
            comments[last] = match.group(2)
        elif more and last is not None:
            comments[last] += " " + more.group(1)
        else:
            last = None
    return comments


def generate() -> dict[str, Any]:
    gen = _Generator()
    root = gen.dataclass(Report)
    return {
        "$schema": DRAFT,
        "$id": f"urn:nnviz-report:report-{SCHEMA_VERSION}",
        "title": f"nnviz_report report.json, schema {SCHEMA_VERSION}",
        "description": (
            "Every number an nnviz_report HTML report shows. Generated from nnviz_report.report_model by "
            "scripts/make_schema.py; do not edit by hand. Non-finite floats are written as null."
        ),
        **{k: v for k, v in root.items() if k != "description"},
        "$defs": {name: gen.defs[name] for name in sorted(gen.defs)},
    }


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the committed schema file")
    args = parser.parse_args(argv)
    text = dumps(generate())
    path = schema_path()
    if args.update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        print(f"{path.relative_to(ROOT)} is out of date; run python scripts/make_schema.py --update", file=sys.stderr)
        return 1
    print(f"{path.relative_to(ROOT)} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
