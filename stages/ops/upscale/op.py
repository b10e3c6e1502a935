"""The upscale op: every frame through an AI super-resolution engine (stages.ops.upscale.engine's torch ``Upscaler`` or the
ncnn one) by a scale plan, in the engine's batches; and :func:`build_upscale_op`, the one place the three graphs
choose the model, the backend and the plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stages.device import DeviceChoice
from stages.models.store import ModelStore
from stages.ops.contract import ChunkOp, ChunkShape, ChunkTask
from stages.ops.registry import register_op
from stages.ops.upscale.content import ContentGuess
from stages.ops.upscale.engine import (
    ScaleStep,
    Upscaler,
    UpscaleSettings,
    describe_plan,
    output_size,
    plan_scale,
    upscale_chunk,
)
from stages.ops.upscale.ncnn import NcnnUpscaler, choose_backend
from stages.ops.upscale.selection import ModelDecision, ModelSelection, decide_model, select_model
from stages.store.chunk_store import ChunkContent, ChunkRecord


class UpscaleEngine(Protocol):
    batch: int
    model_calls: int
    precision: str

    def upscale(self, frames: Sequence[np.ndarray], steps: Sequence[ScaleStep]) -> list[np.ndarray]: ...


def make_upscaler(selection: ModelSelection, backend: str, choice: DeviceChoice, settings: UpscaleSettings,
                  ncnn_cache: Path) -> Upscaler | NcnnUpscaler:
    """The engine that runs the selected model on ``backend`` ("torch" or "ncnn")."""
    loaded = selection.load()
    if backend == "ncnn":
        return NcnnUpscaler.from_descriptor(loaded.descriptor, ncnn_cache, tile=settings.tile,
                                           overlap=settings.tile_overlap)
    return Upscaler(loaded.descriptor, choice, tile=settings.tile, overlap=settings.tile_overlap,
                    batch=settings.batch, compile=settings.compile)


@register_op
class UpscaleOp(ChunkOp[ChunkRecord]):
    """Upscale each chunk by ``steps`` (x``scale`` in all) with the engine ``engine()`` makes; the engine is made
    only when a chunk has to be computed. ``key`` holds what decides the bytes besides the plan (model, weights,
    tiling, precision, device, backend); ``about`` is what the run reports (model id, device, backend...)."""

    name = "upscale"

    def __init__(self, engine: Callable[[], UpscaleEngine], steps: Sequence[ScaleStep], scale: int,
                 key: Mapping[str, Any], about: Mapping[str, Any] | None = None) -> None:
        self._make_engine, self.steps, self.scale = engine, tuple(steps), scale
        self.key, self.about = dict(key), dict(about or {})
        self.engine: UpscaleEngine | None = None
        self.model_calls = 0
        self.model_seconds = self.write_wait_seconds = 0.0

    def model_key(self) -> dict[str, Any]:
        """What decides the upscaled bytes of a frame: the model, its weights, the plan, tiling and device."""
        return {**self.key, "plan": describe_plan(self.steps)}

    def key_parts(self, task: ChunkTask[ChunkRecord]) -> Mapping[str, Any]:
        return self.model_key()

    def manifest_params(self) -> Mapping[str, Any]:
        return {"model": self.key.get("model"), "plan": describe_plan(self.steps)}

    def expect(self, task: ChunkTask[ChunkRecord]) -> ChunkShape:
        up = task.upstream
        return ChunkShape(up.frame_count, *output_size(up.width, up.height, self.scale))

    def _loaded(self) -> UpscaleEngine:
        """The engine, made the first time a frame has to be upscaled."""
        if self.engine is None:
            self.engine = self._make_engine()
        return self.engine

    def upscale(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``frames`` through the engine."""
        engine = self._loaded()
        before = engine.model_calls
        out = engine.upscale(frames, self.steps)
        self.model_calls += engine.model_calls - before
        return out

    def produce(self, task: ChunkTask[ChunkRecord], tmp: Path) -> ChunkContent:
        up = task.upstream
        result = upscale_chunk(up.path, tmp, self._loaded(), self.steps, expected_frames=up.frame_count,
                               bit_depth=up.bit_depth)
        self.model_calls += result.model_calls
        self.model_seconds += result.model_seconds
        self.write_wait_seconds += result.write_wait_seconds
        return ChunkContent(result.frame_count, up.pts, result.width, result.height, result.bit_depth)

    @property
    def precision(self) -> str | None:
        return self.engine.precision if self.engine is not None else self.key.get("precision")

    def describe(self) -> dict[str, Any]:
        """What the run did, for its metadata and the report."""
        return {**self.about, "plan": describe_plan(self.steps), "scale": self.scale, "precision": self.precision,
                "model_calls": self.model_calls, "model_seconds": round(self.model_seconds, 2),
                "waited_on_writer_seconds": round(self.write_wait_seconds, 2)}

    @classmethod
    def examples(cls, clip: Any) -> tuple[ChunkOp, ChunkOp]:
        def op(seed: int) -> UpscaleOp:
            model = clip.tiny_model(scale=2, seed=seed)
            return cls(lambda: Upscaler(model, clip.device), plan_scale(2, 2), 2,
                       {"model": f"tiny-{seed}", "device": clip.device.kind})
        return op(0), op(1)


@dataclass(frozen=True)
class UpscaleChoice:
    """The op :func:`build_upscale_op` made and what it decided, in words for the run's log."""

    op: UpscaleOp
    selection: ModelSelection
    backend: str
    backend_reason: str
    decision: ModelDecision


def build_upscale_op(models: ModelStore, settings: UpscaleSettings, choice: DeviceChoice, *,
                     model_path: str | None = None,
                     content: Callable[[], ContentGuess] | None = None) -> UpscaleChoice:
    """Choose the model for ``settings`` (catalog id, ``auto`` with ``content`` to look at the video, or
    ``model_path``; fetched now if it must be, see :func:`decide_model`), the backend for ``choice`` and the
    scale plan, and make the op that runs them. Shared by the enhance, production and reframe graphs.

    Raises:
        ModelError: the model cannot be found, fetched or loaded (callers may fall back to Lanczos).
        SettingsError: an impossible setting.
    """
    decision = ModelDecision(settings.model, "model file given") if model_path \
        else decide_model(models, settings.model, device_kind=choice.kind, content=content)
    selection = select_model(models, decision.model_id, settings.scale, model_path)
    backend, reason = choose_backend(settings.backend, choice, selection.load().descriptor)
    steps = plan_scale(settings.scale, selection.model_scale)
    compiled = bool(settings.compile and backend == "torch")
    key = {"model": selection.model_id, "weights": selection.weights_sha256, "tile": settings.tile,
           "overlap": settings.tile_overlap, "precision": choice.precision, "device": choice.kind,
           "backend": backend, "compiled": compiled}
    about = {"model": selection.model_id, **decision.describe(), "weights_source": selection.source,
             "note": selection.note,
             "device": choice.device, "device_reason": choice.reason, "backend": backend, "backend_reason": reason}
    ncnn_cache = models.cache_dir / "ncnn-exports"
    op = UpscaleOp(lambda: make_upscaler(selection, backend, choice, settings, ncnn_cache), steps, settings.scale,
                   key, about)
    return UpscaleChoice(op, selection, backend, reason, decision)
