"""Model specs → ``nn.Module``, with checkpoints treated as untrusted input.

Specs: a built-in name (``lenet``, ``resnet20``, ``resnet56``), ``torchvision:NAME`` (with
constructor options as ``torchvision:NAME,KEY=VALUE,...``, e.g. ``torchvision:vit_b_16,image_size=32``),
``package.module:callable``, or ``torchscript:PATH``. Checkpoints are always read with
``torch.load(weights_only=True)``; a file that needs full unpickling can run arbitrary code, so
it is refused unless the user says they trust it.

A checkpoint is also checked before torch reads it: it must be a regular file (``/dev/zero`` or
a FIFO would never end), and a zip archive's declared uncompressed size must stay within a
multiple of the file's own size (torch's archives are stored uncompressed, so a real checkpoint
is close to 1×; a 1 MB file that inflates to 1 GB is refused before a byte is inflated). Any
failure inside torch's loader on untrusted bytes is the file's fault, never ours: a one-line
error, whatever exception torch raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import pickle
import sys
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError, ModelError, one_line, quoted
from .zoo import BUILTIN_MODELS

# How many times its own size a zip checkpoint may declare when inflated; override with the
# environment variable below (for example for a checkpoint saved with compression on purpose).
MAX_EXPANSION = 4.0
MAX_EXPANSION_ENV = "NNVIZ_MAX_CHECKPOINT_EXPANSION"
# Small files carry fixed zip overhead (headers, the version record); allow this much on top.
EXPANSION_SLACK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    spec: str
    class_name: str
    checkpoint_name: str | None
    checkpoint_sha256: str | None


def load_model(spec: str, *, weights: Path | None = None, trust_checkpoint: bool = False) -> LoadedModel:
    if spec.startswith("torchscript:"):
        return _load_torchscript(Path(spec.removeprefix("torchscript:")), weights)
    if spec in BUILTIN_MODELS:
        factory, shipped = BUILTIN_MODELS[spec]
        module = factory()
        if weights is None and shipped is not None:
            with resources.as_file(resources.files(__package__) / "weights" / shipped) as path:
                return _with_weights(module, spec, path, trust_checkpoint)
    elif spec.startswith("torchvision:"):
        module = _torchvision_model(spec.removeprefix("torchvision:"))
    elif ":" in spec:
        module = _user_factory(spec)
    else:
        known = ", ".join(sorted(BUILTIN_MODELS))
        raise ModelError(
            f"unknown model {spec!r}; use one of {known}, torchvision:NAME, package.module:callable or torchscript:PATH"
        )
    if weights is None:
        return LoadedModel(module, spec, type(module).__name__, None, None)
    return _with_weights(module, spec, weights, trust_checkpoint)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _with_weights(module: nn.Module, spec: str, path: Path, trust: bool) -> LoadedModel:
    state = read_state_dict(path, trust=trust)
    apply_state_dict(module, state, path.name)
    return LoadedModel(module, spec, type(module).__name__, path.name, sha256_file(path))


def read_state_dict(path: Path, *, trust: bool = False) -> dict[str, torch.Tensor]:
    """A bare state_dict, or one held under ``state_dict`` or ``model`` in a checkpoint dict."""
    name = one_line(path.name)
    if not path.exists():
        raise CheckpointError(f"checkpoint {one_line(path)} does not exist; check the --weights path")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {one_line(path)} is a folder, not a file; pass the .pt file")
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {one_line(path)} is not a regular file (a device, a FIFO or a socket never ends "
            "like a file); pass the saved .pt file"
        )
    _check_declared_size(path)
    if _is_torchscript_archive(path):
        # torch.load would hand such a file to torch.jit.load: code, not weights. Only the
        # explicit torchscript: spec loads it, whatever --trust-checkpoint says.
        raise CheckpointError(
            f"{name} is a TorchScript archive (it carries its own code and weights), not a state_dict; "
            f"load it with --model torchscript:{one_line(path)} and no --weights"
        )
    try:
        with warnings.catch_warnings():
            # torch warns about odd pickle protocols in damaged files: the error below says it in one line
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Only a reference to a Python global (a class or function) needs full unpickling;
        # any other unpickling failure means the bytes are not a checkpoint at all.
        if "Unsupported global" not in str(exc):
            # torch's own text here suggests weights_only=False, which is exactly what not to do.
            raise CheckpointError(
                f"checkpoint {name} is corrupt or not a PyTorch file (its bytes do not unpickle as tensors); "
                "re-save it with torch.save(model.state_dict(), ...) or re-download it"
            ) from None
        if not trust:
            raise CheckpointError(
                f"checkpoint {name} holds Python objects that only full unpickling can restore, "
                "which can run arbitrary code; re-save it as a plain state_dict "
                "(torch.save(model.state_dict(), ...)) or pass --trust-checkpoint if you trust its author"
            ) from None
        loaded = _load_trusted(path)
    except Exception as exc:
        # Truncated or flipped bytes make torch's loader raise almost anything (KeyError,
        # AssertionError, IndexError, TypeError, NotImplementedError, RuntimeError, ...).
        raise CheckpointError(
            f"checkpoint {name} is corrupt or truncated ({_first_line(exc)}); re-save or re-download it"
        ) from None
    return _extract_state_dict(loaded, name)


def max_expansion() -> float:
    text = os.environ.get(MAX_EXPANSION_ENV)
    if text is None:
        return MAX_EXPANSION
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise CheckpointError(f"{MAX_EXPANSION_ENV}={one_line(text, 40)} is not a positive number; unset it or "
                              f"give a factor such as {MAX_EXPANSION:g}")
    return value


def _check_declared_size(path: Path) -> None:
    """Refuse a zip whose entries declare more inflated bytes than the limit, before reading any."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, OverflowError):
        return  # not a zip (a legacy pickle) or a broken one: torch.load's own checks decide
    size = path.stat().st_size
    limit = max_expansion() * size + EXPANSION_SLACK_BYTES
    if declared > limit:
        raise CheckpointError(
            f"checkpoint {one_line(path.name)} declares {declared:,} bytes once unpacked, "
            f"{declared / max(size, 1):.0f}× its size of {size:,} bytes (the limit is {max_expansion():g}×); "
            f"refusing to unpack it; re-save it with torch.save, or raise {MAX_EXPANSION_ENV} if you trust it"
        )


def _is_torchscript_archive(path: Path) -> bool:
    """The test torch.load itself uses: a zip archive holding ``constants.pkl``."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _load_trusted(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (Exception, SystemExit) as exc:  # the user's own pickle can raise anything
        raise CheckpointError(f"checkpoint {one_line(path.name)} could not be unpickled ({_first_line(exc)})") from None


def _extract_state_dict(loaded: Any, name: str) -> dict[str, torch.Tensor]:
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            inner = loaded.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, Mapping):
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(
            f"checkpoint {name} holds no state_dict (a dict of tensors, or one under 'state_dict' or 'model')"
        )
    non_tensor = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if non_tensor:
        raise CheckpointError(
            f"checkpoint {name} has entries that are not tensors: {', '.join(map(one_line, non_tensor[:5]))}"
        )
    unusable = [f"{quoted(k)} ({_tensor_kind(v)})" for k, v in loaded.items() if _tensor_kind(v)]
    if unusable:
        raise CheckpointError(
            f"checkpoint {name} holds tensors without usable values: {', '.join(unusable[:5])}; "
            "save it from a model whose weights are materialised, dense tensors"
        )
    # Modules such as torchvision's MNASNet read their version from the state_dict's _metadata
    # when loading; a plain dict copy would drop it.
    metadata = getattr(loaded, "_metadata", None)
    state: OrderedDict[str, torch.Tensor] = OrderedDict((str(k), v) for k, v in loaded.items())
    # Checkpoints saved from DataParallel / DistributedDataParallel prefix every key.
    if all(k.startswith("module.") for k in state):
        state = OrderedDict((k.removeprefix("module."), v) for k, v in state.items())
        if isinstance(metadata, Mapping):
            metadata = OrderedDict(
                ("" if str(k) == "module" else str(k).removeprefix("module."), v) for k, v in metadata.items())
    if isinstance(metadata, Mapping):
        state._metadata = metadata  # type: ignore[attr-defined]
    return state


def _tensor_kind(tensor: torch.Tensor) -> str:
    """Why a tensor cannot be loaded as a weight: '' when it can."""
    if tensor.is_meta:
        return "meta tensor: shape only, no values"
    if tensor.layout != torch.strided:
        return f"{str(tensor.layout).removeprefix('torch.')} layout"
    if tensor.is_quantized:
        return "quantized"
    return ""


def apply_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], name: str) -> None:
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{one_line(k)} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_short_list([one_line(k) for k in missing])}")
    if unexpected:
        problems.append(f"unexpected keys {_short_list([one_line(k) for k in unexpected])}")
    if misshaped:
        problems.append(f"mis-shaped keys {_short_list(misshaped)}")
    if problems:
        raise CheckpointError(
            f"checkpoint {one_line(name)} does not fit {one_line(type(module).__name__)}: {'; '.join(problems)}; "
            "check that --model and --weights belong together"
        )
    if getattr(state, "_metadata", None) is None and getattr(expected, "_metadata", None) is not None:
        # A checkpoint saved as a plain dict has no version records: read it as written by the
        # module's current code, which is what a state_dict of the same code would say.
        state = OrderedDict(state)
        state._metadata = expected._metadata  # type: ignore[attr-defined]
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:  # the module's own loading code (version upgrades, dtype casts) on untrusted values
        raise CheckpointError(
            f"checkpoint {one_line(name)} could not be loaded into {one_line(type(module).__name__)} "
            f"({_first_line(exc)}); check that --model and --weights belong together"
        ) from None


def _short_list(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def parse_torchvision_spec(text: str) -> tuple[str, dict[str, int | float | bool | str]]:
    """``NAME[,KEY=VALUE]...`` → (name, constructor options). Values are read as int, float,
    ``true``/``false`` or else a plain string, never evaluated; ``num_classes`` and ``weights``
    are the tool's to set."""
    name, *items = text.split(",")
    example = "torchvision:vit_b_16,image_size=32"
    if not name.strip():
        raise ModelError(f"torchvision spec {text!r} has no model name; write e.g. {example}")
    options: dict[str, int | float | bool | str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key.isidentifier() or not raw:
            raise ModelError(f"torchvision option {item!r} must be KEY=VALUE (e.g. {example})")
        if key in options:
            raise ModelError(f"torchvision option {key!r} is given twice; give it once")
        if key in ("num_classes", "weights"):
            raise ModelError(f"torchvision option {key!r} is set by nnviz-report (10 classes; weights from --weights); "
                             "leave it out")
        options[key] = _option_value(raw)
    return name.strip(), options


def _option_value(raw: str) -> int | float | bool | str:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _torchvision_model(spec: str) -> nn.Module:
    import torchvision

    name, options = parse_torchvision_spec(spec)
    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        raise ModelError(f"torchvision has no model {quoted(name)}; see torchvision.models.list_models()") from None
    given = "".join(f", {k}={v!r}" for k, v in options.items())
    try:
        return builder(weights=None, num_classes=10, **options)
    except Exception as exc:
        raise ModelError(
            f"torchvision:{one_line(name)} could not be built with num_classes=10{one_line(given)} ({_first_line(exc)})"
        ) from None


def _user_factory(spec: str) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        python_module = importlib.import_module(module_name)
    except SystemExit as exc:
        raise ModelError(f"model spec {spec!r}: importing {module_name!r} called sys.exit({one_line(exc.code, 40)}); "
                         "a model's module must not end the process when imported") from None
    except Exception as exc:
        raise ModelError(
            f"model spec {spec!r}: cannot import {module_name!r} ({_first_line(exc)}); {_import_hint(module_name, exc)}"
        ) from None
    factory = getattr(python_module, attr, None)
    if factory is None:
        raise ModelError(
            f"model spec {spec!r}: {module_name} has no attribute {attr!r}; check the name after the colon"
        )
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise ModelError(
            f"model spec {spec!r}: {attr} is neither an nn.Module nor callable; "
            "point the spec at a module instance or a function that returns one"
        )
    try:
        built = factory()
    except SystemExit as exc:
        raise ModelError(f"model spec {spec!r}: calling {attr}() called sys.exit({one_line(exc.code, 40)}); "
                         "point the spec at a function that returns an nn.Module") from None
    except Exception as exc:
        raise ModelError(f"model spec {spec!r}: calling {attr}() failed ({_first_line(exc)})") from None
    if not isinstance(built, nn.Module):
        raise ModelError(f"model spec {spec!r}: {attr}() returned {type(built).__name__}, not an nn.Module")
    return built


def _load_torchscript(path: Path, weights: Path | None) -> LoadedModel:
    if weights is not None:
        raise ModelError("a TorchScript model carries its own weights; drop --weights")
    if not path.is_file():
        raise CheckpointError(f"TorchScript file {one_line(path)} does not exist or is not a regular file")
    _check_declared_size(path)
    try:
        with warnings.catch_warnings():
            # torch ≥ 2.10 deprecates torch.jit in favour of torch.export; the user chose a TorchScript
            # file with torchscript:PATH, and the notice (about torch's own API) is nothing they can act on.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated", category=FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{one_line(path.name)} is not a TorchScript archive ({_first_line(exc)})") from None
    return LoadedModel(module, f"torchscript:{path.name}", "TorchScript", path.name, sha256_file(path))


def _import_hint(module_name: str, exc: BaseException) -> str:
    """The likely fix for a factory module that does not import. The usual cause is the import
    path: the `nnviz-report` command, unlike `python -m`, does not look in the current folder."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and (module_name + ".").startswith(exc.name + "."):
        top = exc.name.split(".")[0]
        if (Path.cwd() / f"{top}.py").is_file() or (Path.cwd() / top).is_dir():
            return (f"{top} is in the current folder, which nnviz-report does not search: run it with PYTHONPATH=. "
                    "(or pip install -e . if it is a package)")
        return (f"is it installed in this Python ({sys.executable}; pip install it there), or is the folder "
                "that holds it on PYTHONPATH?")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"{module_name} needs {exc.name!r}, which is not installed in this Python ({sys.executable})"
    return f"the module raised while being imported; run python -c 'import {module_name}' to see the traceback"


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """The exception's first line; a long one (torch's run to several sentences) is cut to its
    first sentence, so the error stays one readable line."""
    try:
        lines = str(exc).strip().splitlines()
    except Exception:  # an exception class from user code whose __str__ fails
        lines = []
    if not lines:
        return type(exc).__name__
    text = one_line(lines[0])
    if len(text) > limit:
        text = text.split(". ")[0]
        text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}"
