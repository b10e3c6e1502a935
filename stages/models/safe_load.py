"""Reading weights files without running anything in them.

A ``.pth`` / ``.pt`` / ``.ckpt`` / ``.pkl`` is a Python pickle, and unpickling can call any function the file
names (``os.system`` included). Every weights file the project reads goes through :func:`load_tensors`:
``.safetensors`` through safetensors (a JSON header and raw tensors, nothing to execute), every other suffix
through ``torch.load(..., weights_only=True)``, explicitly, whatever torch's default is. torch's weights-only
unpickler accepts tensors, containers and plain values only; a file naming anything else (a function, a class,
a TorchScript archive) is refused with :class:`stages.errors.UnsafeWeightsError` before any of it runs.

spandrel's ``ModelLoader.load_from_file`` is not used: it unpickles with its own allow-list (not
``weights_only``) and opens ``.pt`` files with ``torch.jit.load`` first, which runs TorchScript.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stages.errors import ModelError, UnsafeWeightsError

__all__ = ["PICKLE_SUFFIXES", "UnreadableWeightsError", "load_tensors"]

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".pkl")
_DETAIL_LIMIT = 200


class UnreadableWeightsError(ModelError):
    """A weights file that cannot be read (damaged, foreign, not a state dict); ``detail`` says why, briefly."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


def _unreadable(path: Path, what: str, detail: str) -> UnreadableWeightsError:
    return UnreadableWeightsError(f"{what}: cannot load {path} ({detail}); check that it is an uncorrupted "
                                  ".pth/.safetensors model file", detail)


def _torch_detail(exc: BaseException) -> str:
    """The useful line of torch's weights-only refusal (its own text suggests ``weights_only=False``: never shown)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "global" in line.split(":", 1)[0]:
            return line[:_DETAIL_LIMIT]
    for index, line in enumerate(lines):
        if line.endswith("WeightsUnpickler error:") and index + 1 < len(lines):
            return lines[index + 1][:_DETAIL_LIMIT]
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()[:_DETAIL_LIMIT]
    context = exc.__context__ or exc.__cause__
    if context is not None and str(context).strip():
        return str(context).strip().splitlines()[0][:_DETAIL_LIMIT]
    return (lines[0] if lines else type(exc).__name__)[:_DETAIL_LIMIT]


def _refusal(path: Path, what: str, detail: str) -> UnsafeWeightsError:
    return UnsafeWeightsError(
        f"{what}: cannot load {path} safely: {detail}. Loading it could run code, so it is refused; only "
        "weights-only checkpoints (tensors in plain containers) and .safetensors files are loaded. If you trust "
        "the file, re-save just its state dict (torch.save(model.state_dict(), ...)) or convert it to .safetensors")


def load_tensors(path: str | os.PathLike[str], *, what: str = "model store", any_suffix: bool = False
                 ) -> Mapping[str, Any]:
    """The content of a weights file (a state dict, possibly wrapped as ``{'params_ema': ...}``), on the CPU,
    read without executing anything from the file.

    ``what`` starts the error messages (``"model store"``, ``"rife"``...). ``any_suffix``: a file whose suffix
    is neither ``.safetensors`` nor one of :data:`PICKLE_SUFFIXES` is read as a torch pickle (weights only too)
    instead of refused.

    Raises:
        UnsafeWeightsError: the file names Python objects other than tensors and plain containers, or is a
            TorchScript archive (code).
        UnreadableWeightsError: it cannot be read (damaged, not a weights file, not a mapping).
        ModelError: an unsupported suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for a bad header
            raise _unreadable(path, what, f"{type(exc).__name__}: {str(exc)[:_DETAIL_LIMIT]}") from exc
    if suffix not in PICKLE_SUFFIXES and not any_suffix:
        raise ModelError(f"{what}: {path.name} has the unsupported suffix {suffix or '(none)'!r}; use a .pth, .pt, "
                         ".ckpt, .pkl or .safetensors weights file")
    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on TorchScript and pickle protocols: the refusal says it
            warnings.filterwarnings("ignore", message=".*(TorchScript archive|pickle protocol).*")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _torch_detail(exc)
        if "GLOBAL" in detail or "global" in detail.lower():
            raise _refusal(path, what, f"it is a pickle that names Python objects besides tensors ({detail})") \
                from None
        raise _unreadable(path, what, f"not a weights-only checkpoint: {detail}") from None
    except RuntimeError as exc:
        if "TorchScript" in str(exc):
            raise _refusal(path, what, "it is a TorchScript archive, which holds code") from None
        raise _unreadable(path, what, f"{type(exc).__name__}: {_torch_detail(exc)}") from exc
    except Exception as exc:  # zip, EOF, OS errors: a damaged or foreign file
        raise _unreadable(path, what, f"{type(exc).__name__}: {str(exc)[:_DETAIL_LIMIT]}") from exc
    if not isinstance(loaded, Mapping):
        raise UnreadableWeightsError(f"{what}: {path} holds a {type(loaded).__name__}, not a state dict; pass a "
                                     "model's weights file", f"it holds a {type(loaded).__name__}, not a state dict")
    return loaded
