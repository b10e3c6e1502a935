"""Progress and ETA of an enhance run, estimated from its per-chunk progress events.

:func:`estimate_progress` turns the events a run has logged so far into (share done, current stage, seconds
left); stages not measured yet cost a prior relative to the upscale stage (:data:`STAGE_PRIORS`, or
:func:`learn_priors` from this machine's earlier runs). ``_stages_of`` reads a run's expected stages from its
config (derived from the enhance chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orchestration.graphs.enhance_steps  # noqa: F401 - binds the chain's steps, which run_stages reads
from orchestration.graphs.chain import run_stages

__all__ = ["STAGE_PRIORS", "estimate_progress", "learn_priors"]

# Seconds of one chunk of each stage per second of one upscale chunk, for stages not yet measured (CPU, 2 cores,
# animevideov3 x4, 320x180 input; `python -m benchmarks.eta`). Per output frame: stages after interpolation scale
# with the interpolation factor.
STAGE_PRIORS = {"frames": 0.02, "upscale": 1.0, "interpolate": 0.6, "cohere": 0.4, "encode": 0.28, "report": 0.36}


@dataclass
class _StageTally:
    chunks: int | None = None
    done: int = 0
    measured: list[float] = field(default_factory=list)


def _chunk_mean(values: Sequence[float]) -> float | None:
    """Typical seconds per chunk: the mean, leaving out the first chunk (model load, warm-up) once there are
    others."""
    if not values:
        return None
    steady = values[1:] if len(values) > 1 else values
    return sum(steady) / len(steady)


def learn_priors(runs: Sequence[tuple[Sequence[dict[str, Any]], Sequence[str], float]]) -> dict[str, float]:
    """Stage costs relative to the upscale stage, from finished runs on this machine: for each stage, the median
    over ``runs`` (each: its events, its stages, its frame ratio) of its mean chunk seconds over the upscale
    stage's (divided by the frame ratio after interpolation). Stages never measured keep :data:`STAGE_PRIORS`."""
    ratios: dict[str, list[float]] = {}
    for events, stages, frame_ratio in runs:
        per_stage: dict[str, list[float]] = {}
        for event in events:
            if not event.get("reused"):
                per_stage.setdefault(str(event.get("stage")), []).append(float(event.get("seconds") or 0.0))
        upscale = _chunk_mean(per_stage.get("upscale", []))
        if not upscale:
            continue
        after_interp = False
        for stage in stages:
            after_interp = after_interp or stage == "interpolate"
            mean = _chunk_mean(per_stage.get(stage, []))
            if mean is not None and stage != "upscale":
                ratios.setdefault(stage, []).append(mean / upscale / (frame_ratio if after_interp else 1.0))
    learned = dict(STAGE_PRIORS)
    for stage, values in ratios.items():
        values.sort()
        learned[stage] = values[len(values) // 2]
    return learned


def estimate_progress(observations: Sequence[dict[str, Any]], stages: Sequence[str],
                      frame_ratio: float = 1.0, priors: dict[str, float] | None = None,
                      ) -> tuple[float, str, float | None]:
    """(fraction done, current stage, seconds left or None) from the per-chunk progress events of a run.

    Each event has ``stage``, ``chunk``, ``chunks``, ``frames``, ``reused``, ``seconds`` (see
    orchestration/graphs/enhance.py). A stage's remaining chunks cost its measured chunk mean (reused chunks and, once
    there are others, the first chunk left out); a stage not yet measured costs its prior (``priors``, default
    :data:`STAGE_PRIORS`; :func:`learn_priors` makes them from earlier runs) times the upscale stage's mean,
    times ``frame_ratio`` for stages after interpolation. Until one upscale chunk (or the current stage) is
    measured there is no ETA.
    """
    priors = priors or STAGE_PRIORS
    tallies = {stage: _StageTally() for stage in stages}
    current = stages[0] if stages else ""
    chunk_count = None
    for event in observations:
        stage = str(event.get("stage", ""))
        if stage not in tallies:
            continue
        tally = tallies[stage]
        tally.chunks = int(event.get("chunks") or 0) or tally.chunks
        chunk_count = chunk_count or tally.chunks
        tally.done += 1
        if not event.get("reused"):
            tally.measured.append(float(event.get("seconds") or 0.0))
        current = stage
    if chunk_count is None:
        return 0.0, current, None
    for tally in tallies.values():
        tally.chunks = tally.chunks or chunk_count
        tally.done = min(tally.done, tally.chunks)

    # the unit the priors multiply: the upscale stage's mean, else the latest measured stage's (priors undone)
    upscale = _chunk_mean(tallies["upscale"].measured) if "upscale" in tallies else None
    if upscale is None:
        for stage in reversed(stages):
            measured = _chunk_mean(tallies[stage].measured)
            if measured is not None and stage != "frames":
                upscale = measured / priors.get(stage, 0.3)
                break
    after_interp = False
    spent = left = 0.0
    unknown = False
    total_chunks = sum(t.chunks or 0 for t in tallies.values())
    done_chunks = sum(t.done for t in tallies.values())
    for stage in stages:
        tally = tallies[stage]
        measured = _chunk_mean(tally.measured)
        if stage == "interpolate":
            after_interp = True
        if measured is not None:
            per_chunk = measured
        elif upscale is not None:
            per_chunk = priors.get(stage, 0.3) * upscale * (frame_ratio if after_interp else 1.0)
        else:
            per_chunk = None
        remaining = (tally.chunks or 0) - tally.done
        spent += sum(tally.measured)
        if remaining > 0:
            if per_chunk is None:
                unknown = True
            else:
                left += remaining * per_chunk
    if unknown:
        fraction = done_chunks / total_chunks if total_chunks else 0.0
        return min(fraction, 0.99), current, None
    fraction = spent / (spent + left) if spent + left > 0 else done_chunks / max(total_chunks, 1)
    if done_chunks < total_chunks:
        fraction = min(fraction, 0.99)
    return fraction, current, left


def _stages_of(run_config: dict[str, Any]) -> tuple[list[str], float, str]:
    """Expected progress stages of a run from its config (derived from its chain), the output/input frame ratio,
    and the output path."""
    ops = (run_config or {}).get("ops", {})
    stages, ratio = run_stages(ops)
    output = ops.get("encoded_video", {}).get("config", {}).get("output_path")
    return stages, ratio, output
