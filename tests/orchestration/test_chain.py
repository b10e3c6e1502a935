"""Adding a per-frame op is one module plus one name in the chain: a trivial op (invert), registered here and named
in the chain, runs end to end through the Dagster enhance job with its settings in the run config, is cached per
chunk, resumes after a failure, and the CLI's bars, the ETA's stages and the disk estimate follow the chain."""

from __future__ import annotations

import numpy as np
import pytest
from dagster import AssetKey, Config, DagsterInstance

from orchestration.definitions import build_definitions
from orchestration.graphs.chain import (
    chain_step,
    plan_shapes,
    run_stages,
    unregister_step,
)
from orchestration.graphs.enhance_steps import ENHANCE_CHAIN, enhance_run_config
from orchestration.resources.config import (
    ChunkPlanConfig,
    EncodeConfig,
    TemporalConfig,
    UpscaleConfig,
)
from orchestration.resources.core import DeviceResource, ModelStoreResource
from orchestration.resources.workspace import prepare_dagster_home, register_video
from stages.media.chunkio import read_frames
from stages.media.probe import probe_video
from stages.ops.contract import FrameOp
from stages.ops.registry import registered

CHAIN = ("upscale", "invert", "cohere")


class Invert(FrameOp):
    """Invert the picture (a negative)."""

    name = "invert"
    version = "1"
    fail_at_chunk: int | None = None  # a failure injected by the test
    chunks_made = 0

    def __init__(self, amount: float = 1.0) -> None:
        self.amount = amount

    def key_parts(self, task):
        return {"amount": self.amount}

    def map_frame(self, frame: np.ndarray) -> np.ndarray:
        top = float(np.iinfo(frame.dtype).max)
        return np.clip(frame + (top - 2.0 * frame) * self.amount, 0, top).round().astype(frame.dtype)

    def produce(self, task, tmp):
        if Invert.fail_at_chunk == task.position:
            raise RuntimeError("invert: injected failure")
        Invert.chunks_made += 1
        return super().produce(task, tmp)


@pytest.fixture
def invert_in_chain():
    with registered(Invert):  # the op's module registers it; naming it in CHAIN is the only other line
        try:
            yield
        finally:
            unregister_step("invert")  # the binding made for it on first use
            Invert.fail_at_chunk, Invert.chunks_made = None, 0


def _invert(**settings) -> Config:
    return chain_step("invert").config(**settings)


def _metadata(instance: DagsterInstance, asset: str) -> dict:
    record = instance.fetch_materializations(AssetKey(asset), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_a_new_op_runs_through_the_dagster_job_cached_and_resumed(invert_in_chain, workspace, tiny_clip, tmp_path):
    video = register_video(workspace, tiny_clip)
    prepare_dagster_home(workspace)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("videos", [video.key])
    defs = build_definitions(str(workspace.root), model_store=ModelStoreResource(allow_download=False),
                             device=DeviceResource(device="cpu", precision="fp32"), chain=CHAIN)
    job = defs.resolve_job_def("enhance_job")
    output = tmp_path / "negative.mp4"
    config = enhance_run_config(ChunkPlanConfig(chunk_seconds=0.5, scene_detection=False), UpscaleConfig(scale=1),
                                EncodeConfig(output_path=str(output), crf=0, preset="ultrafast"),
                                TemporalConfig(method="none"), chain=CHAIN,
                                steps={"invert": _invert(amount=1.0)})
    assert list(config["ops"]) == ["chunk_plan", "upscale", "invert", "cohere", "encoded_video", "metrics_report"]

    Invert.fail_at_chunk = 1  # the first run dies on the second chunk
    failed = job.execute_in_process(run_config=config, instance=instance, partition_key=video.key,
                                    raise_on_error=False)
    assert not failed.success and not output.exists()
    assert Invert.chunks_made == 1

    Invert.fail_at_chunk = None  # resumed: the stored chunk is reused, the rest are made
    resumed = job.execute_in_process(run_config=config, instance=instance, partition_key=video.key)
    assert resumed.success
    meta = _metadata(instance, "invert")
    assert meta["chunks_reused"] == 1 and meta["chunks_computed"] >= 2
    chunks = resumed.output_for_node("invert")
    frames = [f for r in chunks.records for f in read_frames(r.path)]
    sources = [f for r in chunks.sources for f in read_frames(r.path)]
    assert len(frames) == len(sources) == probe_video(tiny_clip).frame_count
    assert all(np.array_equal(f, 255 - s) for f, s in zip(frames, sources, strict=True))
    assert probe_video(output).frame_count == len(frames)
    assert resumed.output_for_node("metrics_report")["frames_measured"] == len(frames)

    made = Invert.chunks_made
    again = job.execute_in_process(run_config=config, instance=instance, partition_key=video.key)
    assert again.success and Invert.chunks_made == made  # a rerun reuses every chunk
    assert _metadata(instance, "invert")["chunks_computed"] == 0

    half = enhance_run_config(ChunkPlanConfig(chunk_seconds=0.5, scene_detection=False), UpscaleConfig(scale=1),
                              EncodeConfig(output_path=str(tmp_path / "half.mp4"), crf=0, preset="ultrafast"),
                              TemporalConfig(method="none"), chain=CHAIN, steps={"invert": _invert(amount=0.5)})
    assert job.execute_in_process(run_config=half, instance=instance, partition_key=video.key).success
    assert _metadata(instance, "invert")["chunks_reused"] == 0  # a changed parameter changes every key


def test_bars_eta_stages_and_disk_estimate_follow_the_chain(invert_in_chain, tiny_clip):
    info = probe_video(tiny_clip)
    shapes = plan_shapes(CHAIN, {"upscale": UpscaleConfig(scale=2), "cohere": TemporalConfig(method="none")}, info)
    assert list(shapes) == ["frames", "upscale", "invert"]  # cohere passes through: no bar, no chunks
    assert (shapes["invert"].width, shapes["invert"].height) == (info.width * 2, info.height * 2)
    ops = enhance_run_config(upscale=UpscaleConfig(scale=2), temporal=TemporalConfig(method="flow"),
                             chain=CHAIN)["ops"]
    assert run_stages(ops) == (["frames", "upscale", "invert", "cohere", "encode", "report"], 1.0)
    # temporal coherence is on by default (auto): the default chain has a cohere stage
    assert run_stages(enhance_run_config()["ops"])[0] == ["frames", "upscale", "cohere", "encode", "report"]
    assert ENHANCE_CHAIN == ("upscale", "interpolate", "cohere")


def test_a_per_frame_op_gets_a_config_from_its_constructor(invert_in_chain):
    config = chain_step("invert").config
    assert config.__name__ == "InvertConfig" and config().amount == 1.0 and config(amount=0.25).amount == 0.25
    with pytest.raises(ValueError):
        config(amount="a lot")
    with pytest.raises(KeyError, match="per-frame ops: .*invert"):
        chain_step("no_such_op")
