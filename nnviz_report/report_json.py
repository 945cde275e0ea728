"""report.json read back into the report model's frozen dataclasses.

:func:`from_jsonable` is the inverse of :func:`report_model.to_jsonable`: one generic reader,
driven by each dataclass's type hints, so a field added to the model is read back without code
here, and a renamed one fails at the first archive rather than silently. Every value is checked
against its declared type as it is read; the first mismatch is a one-line :class:`SchemaError`
naming the field's path (``activations.layers[3].mean``).

Two losses of :func:`to_jsonable` are undone by the declared types: JSON arrays become tuples
where the model holds tuples, and a ``null`` where a plain ``float`` is declared is a non-finite
number written as ``null`` (it reads back as NaN). Keys this version does not know are ignored:
the schema version, checked by the caller, decides what can be read at all.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import SchemaError, one_line
from .report_model import Figure, Report, iter_figures, to_jsonable

T = TypeVar("T")

# How a figure written by to_jsonable is read back: (its JSON value, its field path) → Figure.
FigureReader = Callable[[Any, str], Figure]


def figure_by_name(value: Any, path: str) -> Figure:
    """The default figure reader: the figure's name only, no bytes. Enough for everything that
    reads an archive for its numbers (compare, history); rendering needs a reader that draws."""
    if not isinstance(value, dict) or not isinstance(value.get("figure"), str):
        raise SchemaError(f"{path} must be a figure reference {{\"figure\": name}}")
    return Figure.undrawn(value["figure"])


def from_jsonable(cls: type[T], data: Any, *, what: str = "report.json",
                  read_figure: FigureReader = figure_by_name) -> T:
    """``data`` (parsed JSON) as an instance of ``cls``, a report-model dataclass. ``what`` names
    the source in error messages (e.g. ``--base-json old/report.json``)."""
    reader = _Reader(what, read_figure)
    result: T = reader.read(cls, data, "")
    return result


def recorded(cls: type[T], value: T) -> T:
    """``value`` (a report-model dataclass) as report.json records it: non-finite numbers become
    NaN or None, as reading the archive back gives them. For drawing from in-memory numbers
    exactly what ``render`` will draw from the JSON."""
    return from_jsonable(cls, to_jsonable(value))


def as_recorded(report: Report) -> Report:
    """``report`` as its report.json records it, its drawn figures kept: every file of a run is
    rendered from this, so what the HTML, PDF and Markdown show is what ``render`` shows from the
    JSON, byte for byte, even where JSON is lossy (an infinite Fisher ratio is recorded as null and
    shown as "—" in every format, not "∞" in the HTML alone)."""
    figures = iter(iter_figures(report))

    def drawn(value: Any, path: str) -> Figure:
        figure = next(figures)
        if value != {"figure": figure.name}:  # the reader visits figures in field order, as iter_figures does
            raise AssertionError(f"{path}: figure {figure.name!r} out of order")
        return figure

    return from_jsonable(Report, to_jsonable(report), read_figure=drawn)


_MISSING = object()
_NONE_TYPE = type(None)


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, resolved type hint, has a default) for each field of a dataclass."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name],
                  f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)
                 for f in dataclasses.fields(cls))


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"the text {one_line(value, 40)!r}"
    return f"{type(value).__name__} {one_line(value, 40)}"


def _expected(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is Any:
        return "any value"
    if dataclasses.is_dataclass(hint) or hint is Figure:
        return "an object"
    if origin in (tuple, list):
        return "an array"
    if origin is dict:
        return "an object"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in typing.get_args(hint))
    return {str: "text", int: "an integer", float: "a number", bool: "true or false",
            _NONE_TYPE: "null"}.get(hint, getattr(hint, "__name__", str(hint)))


class _Reader:
    def __init__(self, what: str, read_figure: FigureReader) -> None:
        self.what = what
        self.read_figure = read_figure

    def fail(self, path: str, hint: Any, value: Any) -> SchemaError:
        return SchemaError(f"{self.what}: {path or 'the top level'} must be {_expected(hint)}, but it is "
                           f"{_describe(value)}; the file is damaged or was not written by nnviz_report")

    def read(self, hint: Any, value: Any, path: str) -> Any:
        if hint is Any:
            return value
        if hint is Figure:
            try:
                return self.read_figure(value, path or "the top level")
            except SchemaError as exc:
                raise SchemaError(f"{self.what}: {exc}") from None
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self._dataclass(hint, value, path)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            return self._union(hint, args, value, path)
        if origin is tuple:
            return self._tuple(hint, args, value, path)
        if origin is list:
            if not isinstance(value, list):
                raise self.fail(path, hint, value)
            return [self.read(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                raise self.fail(path, hint, value)
            return {k: self.read(args[1], v, f"{path}[{one_line(k, 40)!r}]") for k, v in value.items()}
        return self._scalar(hint, value, path)

    def _dataclass(self, cls: type, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise self.fail(path, cls, value)
        kwargs = {}
        for name, hint, has_default in _field_types(cls):
            field_path = f"{path}.{name}" if path else name
            if name not in value:
                if has_default:
                    continue
                raise self.fail(field_path, hint, _MISSING)
            kwargs[name] = self.read(hint, value[name], field_path)
        return cls(**kwargs)

    def _union(self, hint: Any, args: tuple[Any, ...], value: Any, path: str) -> Any:
        if value is None and _NONE_TYPE in args:
            return None
        present = [arg for arg in args if arg is not _NONE_TYPE]
        if len(present) == 1:  # X | None: X's own message names the field inside X that is wrong
            return self.read(present[0], value, path)
        for arg in args:
            if arg is _NONE_TYPE:
                continue
            try:
                return self.read(arg, value, path)
            except SchemaError:
                continue
        raise self.fail(path, hint, value)

    def _tuple(self, hint: Any, args: tuple[Any, ...], value: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise self.fail(path, hint, value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(self.read(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SchemaError(f"{self.what}: {path} must hold {len(args)} values, but it holds {len(value)}; "
                              "the file is damaged or was not written by nnviz_report")
        return tuple(self.read(arg, v, f"{path}[{i}]") for i, (arg, v) in enumerate(zip(args, value, strict=True)))

    def _scalar(self, hint: Any, value: Any, path: str) -> Any:
        if hint is float:
            if value is None:  # to_jsonable writes a non-finite float as null
                return math.nan
            # An int is kept as written: the model held an int there, and a float would print differently.
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif hint is bool or hint is str:
            if isinstance(value, hint):
                return value
        elif hint is _NONE_TYPE:
            if value is None:
                return None
        else:
            raise SchemaError(f"{self.what}: {path} has a type ({hint!r}) report.json cannot hold")
        raise self.fail(path, hint, value)
