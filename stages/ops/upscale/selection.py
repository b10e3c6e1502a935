"""Which network a run uses.

:func:`decide_model` turns the requested model into a catalog id: ``auto`` (the default) looks at the video
(:mod:`stages.ops.upscale.content`) and takes the live-action or the animation network; when the network it
prefers cannot be had (offline, a failed download), it falls back to the best model of that kind present on
this machine and says which and why. :func:`select_model` then finds the network for the requested scale: the
catalog model, a same-family model of that exact scale when one is present, or the model plus extra passes /
a downscale (and the user is told which).
"""

from __future__ import annotations

import logging
import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stages.errors import DownloadError, SettingsError, WeightsUnavailableError
from stages.models.catalog import ANIMATION_MODELS, AUTO_MODEL, LIVE_ACTION_MODEL, LIVE_ACTION_MODELS
from stages.models.store import ModelStore
from stages.models.store_types import LoadedModel
from stages.ops.upscale.content import ContentGuess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelDecision:
    """The catalog id a run uses, and in words why (``fallback``: what could not be used instead, and why)."""

    model_id: str
    reason: str
    fallback: str | None = None
    content: ContentGuess | None = None

    def describe(self) -> dict[str, object]:
        """For the run's metadata and the report."""
        about: dict[str, object] = {"model_choice": self.reason}
        if self.fallback:
            about["model_fallback"] = self.fallback
        if self.content is not None:
            about["content"] = {"kind": self.content.kind, "confidence": round(self.content.confidence, 3),
                                **{k: round(v, 4) for k, v in self.content.features.items()}}
        return about


_FAILED_DOWNLOADS: dict[tuple[str, str], tuple[float, str]] = {}


def entry_host(store: ModelStore, model_id: str) -> str:
    """The host a model's weights download from ("" when it has no direct download)."""
    entry = store.entry(model_id)
    return urllib.parse.urlsplit(entry.file.urls[0]).netloc if entry.direct_download and entry.file else ""

FAILED_DOWNLOAD_TTL = 600.0
"""Seconds a failed download is remembered in this process, so the CLI's check and the run that follows it
(and a batch of runs) do not each wait for the network to fail again."""


def _obtain(store: ModelStore, model_id: str) -> str | None:
    """Make ``model_id``'s weights present (downloading them if that is their source); None when they are,
    else why not."""
    try:
        status = store.status(model_id)
    except SettingsError as exc:
        return str(exc)
    if not status.available:
        return status.reason
    if status.source == "download":
        memo = (model_id, entry_host(store, model_id))
        failed = _FAILED_DOWNLOADS.get(memo)
        if failed is not None and time.monotonic() - failed[0] < FAILED_DOWNLOAD_TTL:
            return failed[1]
        try:
            store.resolve(model_id)  # downloads now, with the store's progress bar
        except (DownloadError, WeightsUnavailableError) as exc:
            entry = store.entry(model_id)
            host = entry_host(store, model_id) or "its server"
            size = f" ({entry.file.size / 1e6:.1f} MB)" if entry.file is not None and entry.file.size else ""
            offline = "cannot connect" in str(exc) or "Name or service" in str(exc)
            why = (f"it is not on this machine and cannot be downloaded{size}: {host} cannot be reached (no "
                   "network connection)"
                   if offline else f"its download{size} from {host} failed ({' '.join(str(exc).split())[:200]})")
            _FAILED_DOWNLOADS[memo] = (time.monotonic(), why)
            return why
    return None


def decide_model(store: ModelStore, requested: str, *, device_kind: str = "cpu",
                 content: Callable[[], ContentGuess] | None = None) -> ModelDecision:
    """The catalog id to run for ``requested`` (a catalog id, an imported model, or ``auto``).

    A named model is used as named (a missing one fails later with what to do). ``auto`` calls ``content``
    (None: live action is assumed) and takes the first model of :data:`LIVE_ACTION_MODELS` or
    :data:`ANIMATION_MODELS`, downloading it if it must; when it cannot be had, the next model of the same
    kind whose weights are on this machine, skipping on a CPU those not tagged ``fast`` (the RRDB and SwinIR
    networks take 10-50x longer per frame there); when none is, the fast model of the other kind, with a
    warning. ``fallback`` says what was not used and why.

    Raises:
        WeightsUnavailableError: no usable upscaling model at all (the message says how to get one).
    """
    if requested != AUTO_MODEL:
        return ModelDecision(requested, "requested")
    guess = content() if content is not None else None
    kind = guess.kind if guess is not None else "live-action"
    why = guess.reason if guess is not None else "no frames to check: live action assumed"
    preferred, other = (ANIMATION_MODELS, LIVE_ACTION_MODELS) if kind == "animation" \
        else (LIVE_ACTION_MODELS, ANIMATION_MODELS)
    first = preferred[0]
    problem = _obtain(store, first)
    if problem is None:
        return ModelDecision(first, f"auto: {why} -> {first}", content=guess)

    def usable(model_id: str) -> bool:
        if model_id not in store.catalog or not store.present(model_id):
            return False
        return device_kind != "cpu" or "fast" in store.entry(model_id).tags

    for candidate in preferred[1:]:
        if usable(candidate):
            note = (f"model: {first} cannot be used here: {problem}. Using {candidate}, the best {kind} model on "
                    f"this machine; to get {first}: `vup models download {first}` on a connected machine, or "
                    f"`vup models import FILE`")
            return ModelDecision(candidate, f"auto: {why} -> {candidate} (fallback)", note, guess)
    slow = [m for m in preferred[1:] if m in store.catalog and store.present(m)]
    for candidate in other:
        if usable(candidate):
            skipped = (f" ({', '.join(slow)} {'is' if len(slow) == 1 else 'are'} here but too slow on a CPU)"
                       if slow else "")
            note = (f"model: {first} cannot be used here: {problem}. No fast {kind} model is on this machine"
                    f"{skipped}; using {candidate}, made for {'live action' if kind == 'animation' else 'animation'}"
                    f", which may {'paint texture flat' if kind == 'live-action' else 'add texture to flat fills'}. "
                    f"To get {first}: `vup models download {first}` on a connected machine, or `vup models import "
                    "FILE`")
            return ModelDecision(candidate, f"auto: {why} -> {candidate} (fallback)", note, guess)
    raise WeightsUnavailableError(f"model: no upscaling model can be used here: {first}: {problem}. Download one "
                                  f"with `vup models download {first}` on a connected machine, or import a file "
                                  "with `vup models import FILE`")


@dataclass
class ModelSelection:
    """The model a run uses, its native scale and weight checksum (part of every chunk key)."""

    model_id: str
    model_scale: int
    weights_sha256: str
    source: str
    note: str | None
    _store: ModelStore = field(repr=False)
    _path: Path | None = field(default=None, repr=False)
    _loaded: LoadedModel | None = field(default=None, repr=False)

    def load(self) -> LoadedModel:
        """Load the network (once)."""
        if self._loaded is None:
            self._loaded = self._store.load(self._path if self._path else self.model_id)
        return self._loaded


def select_model(store: ModelStore, model: str, scale: int, model_path: str | None = None) -> ModelSelection:
    """Pick the network for ``scale``.

    ``model_path`` (any .pth/.safetensors spandrel recognises) wins over the catalog id, which may also be
    a model the user imported (``vup models import``): the store's effective catalog is used. For a catalog
    model whose scale differs from ``scale``, a same-family model of exactly that scale is used when its
    weights are present; otherwise the plan adds passes or a downscale and ``note`` says so.

    Raises:
        SettingsError: unknown model id. WeightsUnavailableError / ModelError: weights missing or unloadable.
    """
    if model_path:
        loaded = store.load(Path(model_path))
        model_id = f"file:{Path(model_path).name}"
        note = _plan_note(model_id, int(loaded.descriptor.scale), scale)
        return ModelSelection(model_id, int(loaded.descriptor.scale), loaded.weights.sha256, "explicit", note,
                              store, Path(model_path), loaded)
    entry = store.entry(model)
    if not entry.uses_spandrel:
        raise SettingsError(f"model: {entry.id} is a {entry.task} model, not an upscaler; pick a super-resolution "
                            "model (`vup models list`, task sr) for --model")
    note = None
    if entry.scale != scale:
        sibling = store.family_variants(entry.family).get(scale)
        native = sibling.native_scale if sibling is not None else None
        problem = "it has none"
        if sibling is not None and native in (None, scale):
            problem = _obtain(store, sibling.id)  # a true x{scale} network: present, or fetched now
        if sibling is not None and problem is None:
            log.info("model: using %s, the x%d model of the %s family", sibling.id, scale, entry.family)
            entry = sibling
        else:
            note = _plan_note(entry.id, entry.scale, scale)
            if sibling is not None and native in (None, scale):
                note += f" ({sibling.id}, its true x{scale} network, cannot be used here: {problem})"
    weights = store.resolve(entry.id)
    return ModelSelection(entry.id, entry.scale, weights.sha256, weights.source, note, store)


def _plan_note(model_id: str, model_scale: int, scale: int) -> str | None:
    if model_scale == scale:
        return None
    if scale < model_scale:
        return (
            f"model: x{scale} with {model_id}, a x{model_scale} network: it runs at x{model_scale} on the source "
            f"(the same model time as x{model_scale}), then an antialiased bicubic downscale to x{scale}. This keeps "
            f"the network's detail; shrinking the source first would save {model_scale // scale}x{model_scale // scale}"
            " of the model time but loses 2-3 dB (docs/models.md, x2)"
        )
    return f"model: x{scale} is made of several passes of {model_id} (x{model_scale})"


def explain_scale(store: ModelStore, model: str, scale: int) -> str | None:
    """What ``scale`` will do with ``model`` (``auto``: the live-action network, the usual pick) and what it
    costs, in one sentence for the page and the CLI; None when the network's own scale is ``scale``."""
    model_id = LIVE_ACTION_MODEL if model == AUTO_MODEL else model
    try:
        entry = store.entry(model_id)
    except SettingsError:
        return None
    if scale <= 1 or not entry.uses_spandrel:
        return None
    if entry.scale == scale:
        if entry.native_scale and entry.native_scale != scale:
            return (f"x{scale} with {entry.id}: its x{entry.native_scale} network runs, then the picture is resized "
                    f"to x{scale}, so it takes as long as x{entry.native_scale}")
        return None
    sibling = store.family_variants(entry.family).get(scale)
    if sibling is not None and sibling.native_scale in (None, scale):
        return f"x{scale} uses {sibling.id}, the true x{scale} network of the {entry.family} family"
    if scale < entry.scale:
        return (f"x{scale} with {entry.id}: it has no x{scale} network, so it runs at x{entry.scale} and the result "
                f"is downscaled: x{scale} takes as long as x{entry.scale} and keeps the x{entry.scale} detail")
    passes = max(1, math.ceil(math.log(scale) / math.log(entry.scale) - 1e-9))
    return f"x{scale} with {entry.id} (x{entry.scale}) takes {passes} passes of the network"
