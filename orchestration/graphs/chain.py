"""The enhance graph as a declared chain of chunk ops, and the one asset factory that turns a chain into assets.

A chain is a tuple of op names (stages.ops.registry), e.g. ``("upscale", "interpolate", "cohere")``. Each name has
a :class:`ChainStep` binding here: its run-config class, how it builds the op from the config and the run's
resources (:meth:`ChainStep.prepare`), and the frames it will output (:meth:`ChainStep.shape`), from which the
CLI's progress bars, the page's stage names, the ETA and the disk-space estimate are derived. Each chunk asset
calls the one driver (stages.ops.driver.run_op) and passes a typed RecordSet to the next.
"""

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    Config,
    DynamicPartitionsDefinition,
    asset,
)

from orchestration.graphs.common import progress_reporter
from orchestration.graphs.retries import retry_transient_only
from orchestration.resources.core import (
    DeviceResource,
    ModelStoreResource,
    WorkspaceResource,
)
from orchestration.resources.workspace import Workspace
from stages.media.probe import VideoInfo
from stages.ops.contract import ChunkOp, FrameOp
from stages.ops.driver import OpRun, run_op
from stages.ops.records import RecordSet, Retiming
from stages.ops.registry import registered_ops


@dataclass(frozen=True)
class FrameShape:
    """What a step outputs, for estimates made before the run: frames and frame size."""

    frames: int
    width: int
    height: int


@dataclass
class StepInputs:
    """What a chunk step sees: its config, the run's resources and the values of the assets before it."""

    context: AssetExecutionContext
    config: Config
    workspace: Workspace
    model_store: ModelStoreResource
    device: DeviceResource
    info: VideoInfo
    video: Mapping[str, Any]
    chunk_plan: Mapping[str, Any]
    upstream: RecordSet

    @property
    def cuts(self) -> list[int]:
        return list(self.chunk_plan.get("scene_cuts", []))


@dataclass
class StepPlan:
    """What :meth:`ChainStep.prepare` decided: the op to run (None: the step passes its input through), what it
    did in words (provenance, also output metadata), and, after the run, ``finish`` adds what only the run knows."""

    op: ChunkOp | None
    provenance: dict[str, Any] = field(default_factory=dict)
    retiming: Retiming | None = None
    finish: Callable[[OpRun], Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class ChainStep:
    """How op ``name`` runs in the enhance graph."""

    name: str
    config: type[Config]
    prepare: Callable[[StepInputs], StepPlan]
    shape: Callable[[Config, FrameShape, VideoInfo], FrameShape | None]  # None: passes through (no work)
    description: str = ""
    # from the config alone, before the video is known (the page's stage list and ETA): does it work, and by
    # how much it multiplies the frame count
    active: Callable[[Config], bool] = lambda _config: True
    rate: Callable[[Config], float] = lambda _config: 1.0
    gpu: bool = False
    kinds: frozenset[str] = frozenset({"python"})


_STEPS: dict[str, ChainStep] = {}


def register_step(step: ChainStep) -> ChainStep:
    """Make ``step`` usable in a chain; a name already bound to another step is refused."""
    if step.name in _STEPS and _STEPS[step.name] is not step:
        raise ValueError(f"chain step {step.name!r} is already bound; choose another op name")
    _STEPS[step.name] = step
    return step


def unregister_step(name: str) -> None:
    _STEPS.pop(name, None)


def chain_step(name: str) -> ChainStep:
    """The binding of op ``name``: the one registered, or, for a registered per-frame op (FrameOp) without one,
    the default binding (:func:`frame_op_step`), made once.

    Raises:
        KeyError: no step and no per-frame op of that name.
    """
    if name not in _STEPS:
        op = registered_ops().get(name)
        if op is None or not issubclass(op, FrameOp):
            raise KeyError(f"no chain step named {name!r}; bound: {', '.join(sorted(_STEPS))}; per-frame ops: "
                           f"{', '.join(sorted(n for n, o in registered_ops().items() if issubclass(o, FrameOp)))}")
        register_step(frame_op_step(op))
    return _STEPS[name]


def op_config(op_class: type[ChunkOp]) -> type[Config]:
    """A Dagster Config class whose fields are the keyword parameters of ``op_class``'s constructor (annotated,
    with their defaults), so a per-frame op's settings show in the run config and the Dagster UI as they are."""
    hints = typing.get_type_hints(op_class.__init__)
    fields: dict[str, Any] = {"__annotations__": {}, "__doc__": f"Settings of the {op_class.name} op."}
    for param in list(inspect.signature(op_class.__init__).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        fields["__annotations__"][param.name] = hints.get(param.name, Any)
        if param.default is not param.empty:
            fields[param.name] = param.default
    return type(f"{op_class.__name__}Config", (Config,), fields)


def frame_op_step(op_class: type[FrameOp], config: type[Config] | None = None, *, description: str = "",
                  gpu: bool = False) -> ChainStep:
    """The binding of a per-frame op: built from its config's fields as keyword arguments (default config: the
    op's constructor parameters, :func:`op_config`); same frame count and size out as in."""
    config = config or op_config(op_class)

    def prepare(inputs: StepInputs) -> StepPlan:
        return StepPlan(op_class(**inputs.config.model_dump()))

    return ChainStep(op_class.name, config, prepare, lambda _config, shape, _info: shape,
                     description=description or (op_class.__doc__ or op_class.name).strip(), gpu=gpu)


def plan_shapes(chain: Sequence[str], configs: Mapping[str, Config], info: VideoInfo) -> dict[str, FrameShape]:
    """The frames each step of ``chain`` will output for the source ``info`` under ``configs`` (by step name;
    a missing config means its defaults), leaving out steps that pass through. Starts with ``frames``."""
    shape = FrameShape(info.frame_count, info.width, info.height)
    shapes = {"frames": shape}
    for name in chain:
        step = chain_step(name)
        out = step.shape(configs.get(name) or step.config(), shape, info)
        if out is not None:
            shapes[name] = shape = out
    return shapes


def run_stages(ops: Mapping[str, Any]) -> tuple[list[str], float]:
    """The progress stages a run will report, from its run config's ``ops`` (chain steps in their order), and the
    output/input frame ratio: ``frames``, each chain step that does work, ``encode``, ``report``."""
    stages, ratio = ["frames"], 1.0
    for name, entry in ops.items():
        try:
            step = chain_step(name)
        except KeyError:
            continue  # chunk_plan, encoded_video, metrics_report
        config = step.config(**(entry or {}).get("config", {}))
        if step.active(config):
            stages.append(name)
            ratio *= step.rate(config)
    return [*stages, "encode", "report"], ratio


def _metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, str | int | float | bool) and v is not None}


def chain_asset(name: str, upstream: str, *, partitions_def: DynamicPartitionsDefinition, group: str):
    """The asset of chain step ``name`` fed by the asset ``upstream`` (a RecordSet)."""
    step = chain_step(name)
    config_class = step.config

    @asset(name=name, partitions_def=partitions_def, group_name=group, kinds=set(step.kinds),
           pool="gpu" if step.gpu else None, description=step.description,
           ins={"upstream": AssetIn(upstream), "video_probe": AssetIn("video_probe"),
                "chunk_plan": AssetIn("chunk_plan")})
    @retry_transient_only
    def _chunks(context: AssetExecutionContext, config: config_class, workspace: WorkspaceResource,
                model_store: ModelStoreResource, device: DeviceResource, upstream: RecordSet,
                video_probe: dict[str, Any], chunk_plan: dict[str, Any]) -> RecordSet:
        ws = workspace.workspace()
        info = upstream.decoded_info(VideoInfo.from_dict(video_probe["info"]))  # deinterlaced at field rate: 2x
        inputs = StepInputs(context, config, ws, model_store, device, info, video_probe["video"], chunk_plan, upstream)
        plan = step.prepare(inputs)
        if plan.op is None:
            context.add_output_metadata({**_metadata(plan.provenance), "chunks": len(upstream.records),
                                         "chunks_computed": 0, "chunks_reused": len(upstream.records)})
            return upstream.then(name, None, **plan.provenance)
        run = run_op(ws.chunk_store(), plan.op, upstream.records, shot_starts=shot_starts(chunk_plan),
                     on_chunk=progress_reporter(context, name))
        provenance = {**plan.provenance, **(plan.finish(run) if plan.finish else {}),
                      "chunk_seconds": [r.seconds for r in run.records]}
        context.add_output_metadata({
            **_metadata(provenance), "chunks_computed": run.computed, "chunks_reused": run.reused,
            "frames": sum(r.frame_count for r in run.records),
            **({"resolution": f"{run.records[0].width}x{run.records[0].height}"} if run.records else {}),
        })
        return upstream.then(name, run.records, retiming=plan.retiming, **provenance)

    return _chunks


def shot_starts(chunk_plan: Mapping[str, Any]) -> frozenset[int]:
    """Indices of the chunks that start at a scene cut: stateful ops start fresh there."""
    cuts = set(chunk_plan.get("scene_cuts", []))
    return frozenset(c["index"] for c in chunk_plan.get("chunks", []) if c["start_frame"] in cuts)
