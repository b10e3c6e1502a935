"""A whole partition materialises in a temp DAGSTER_HOME with the real Real-ESRGAN model; reruns reuse chunks."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from orchestration.graphs.enhance import ENHANCE_ASSETS
from orchestration.graphs.enhance_steps import enhance_run_config
from orchestration.launch.request import EnhanceRequest
from orchestration.launch.runner import run_enhance
from orchestration.resources.config import (
    ChunkPlanConfig,
    EncodeConfig,
    UpscaleConfig,
)
from orchestration.resources.core import (
    DeviceResource,
    ModelStoreResource,
    WorkspaceResource,
)
from orchestration.resources.workspace import register_video
from stages.media.probe import probe_video


def _metadata(instance: DagsterInstance, asset: str, partition: str) -> dict:
    result = instance.fetch_materializations(AssetKey(asset), limit=1)
    record = result.records[0]
    assert record.partition_key == partition
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _request(clip: Path, output: Path, **upscale) -> EnhanceRequest:
    return EnhanceRequest(
        input=clip, output=output, chunk=ChunkPlanConfig(chunk_seconds=0.5),
        upscale=UpscaleConfig(**upscale), encode=EncodeConfig(crf=20, preset="veryfast"),
        device="cpu",
    )


def test_partition_end_to_end_then_rerun_reuses_everything(workspace, tiny_clip, tmp_path):
    source = probe_video(tiny_clip)
    out = tmp_path / "out" / "result.mp4"
    events: list[dict] = []
    first = run_enhance(workspace, _request(tiny_clip, out), on_event=events.append)
    assert first.success, first.error
    assert Path(first.output) == out.resolve()

    result = probe_video(out)
    assert (result.width, result.height) == (source.width * 4, source.height * 4)
    assert result.frame_count == source.frame_count
    assert abs(result.duration - source.duration) <= 1 / source.avg_fps
    assert len(result.audio_streams) == 1

    instance = DagsterInstance.get()
    assert first.partition_key in instance.get_dynamic_partitions("videos")
    run = instance.get_run_by_id(first.run_id)
    assert run.job_name == "enhance_job" and run.tags["dagster/partition"] == first.partition_key
    up = _metadata(instance, "upscale", first.partition_key)
    chunks = up["chunks_computed"]
    assert chunks >= 3 and up["chunks_reused"] == 0 and up["model_calls"] >= source.frame_count
    assert up["model"] == "realesr-animevideov3"
    assert {e["stage"] for e in events} >= {"frames", "upscale", "encode"}
    assert sum(e["frames"] for e in events if e["stage"] == "upscale") == source.frame_count

    summary = first.report
    assert summary["output"]["frames"] == source.frame_count
    assert summary["flicker"]["output"] > 0 and summary["flicker"]["lanczos_baseline"] > 0
    frames_table = pq.read_table(summary["files"]["frames_parquet"])
    assert frames_table.num_rows == source.frame_count
    assert set(frames_table.column_names) >= {"flicker_output", "flicker_lanczos", "time_s"}
    written = json.loads(Path(summary["files"]["summary_json"]).read_text())
    assert written["model"] == "realesr-animevideov3"
    # The default is auto: the sample (a photo filmed by a moving camera) is live action; offline (as tests run),
    # on a CPU, the live-action network cannot be had and the fast anime network is the fallback, which is said.
    assert written["model_choice"].startswith("auto: content check") and "live-action" in written["model_choice"]
    assert "realesr-general-x4v3 cannot be used here" in written["model_fallback"]
    assert written["content"]["kind"] == "live-action"

    out.unlink()
    second = run_enhance(workspace, _request(tiny_clip, out))
    assert second.success, second.error
    assert out.exists() and probe_video(out).frame_count == source.frame_count
    again = _metadata(instance, "upscale", first.partition_key)
    assert again["model_calls"] == 0 and again["chunks_reused"] == chunks and again["chunks_computed"] == 0
    frames = _metadata(instance, "frame_chunks", first.partition_key)
    assert frames["chunks_computed"] == 0
    assert _metadata(instance, "encoded_video", first.partition_key)["reused"] is True

    # a changed setting redoes only what it changes: x2 reuses the decoded chunks, redoes the model work
    third = run_enhance(workspace, _request(tiny_clip, tmp_path / "x2.mp4", scale=2))
    assert third.success, third.error
    assert probe_video(tmp_path / "x2.mp4").width == source.width * 2
    assert _metadata(instance, "frame_chunks", first.partition_key)["chunks_computed"] == 0
    assert _metadata(instance, "upscale", first.partition_key)["chunks_computed"] == chunks


def test_materialize_with_test_resources(workspace, tiny_clip, tmp_path):
    """The Dagster-examples way: materialize() the assets with resources built for the test."""
    record = register_video(workspace, tiny_clip)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("videos", [record.key])
    result = materialize(
        ENHANCE_ASSETS,
        partition_key=record.key,
        instance=instance,
        resources={
            "workspace": WorkspaceResource(root=str(workspace.root)),
            "model_store": ModelStoreResource(allow_download=False),
            "device": DeviceResource(device="cpu", precision="fp32"),
        },
        run_config=enhance_run_config(
            ChunkPlanConfig(chunk_seconds=1.0, scene_detection=False),
            UpscaleConfig(scale=2, tile=64),
            EncodeConfig(output_path=str(tmp_path / "m.mkv"), codec="h265", preset="ultrafast"),
        ),
    )
    assert result.success
    encoded = result.output_for_node("encoded_video")
    info = probe_video(encoded["path"])
    assert info.codec == "hevc" and info.width == 128 and info.height == 96
    assert result.output_for_node("upscale").step("upscale")["precision"] == "fp32"


def test_failure_reports_one_line_and_leaves_no_output(workspace, tiny_clip, tmp_path):
    out = tmp_path / "never.mp4"
    outcome = run_enhance(workspace, _request(tiny_clip, out, model="no-such-model"))
    assert not outcome.success
    assert "no-such-model" in outcome.error and "\n" not in outcome.error
    assert not out.exists()


@pytest.mark.parametrize("field", ["scale"])
def test_run_config_carries_settings(field):
    config = enhance_run_config(upscale=UpscaleConfig(scale=8))
    assert config["ops"]["upscale"]["config"][field] == 8


def test_ten_bit_vfr_source_keeps_depth_and_timestamps(workspace, tmp_path):
    """A 10-bit HEVC VFR clip goes through 16-bit chunks and comes out 10-bit with the same timestamps."""
    from stages.media.probe import frame_timestamps
    from stages.quality.samples import make_sample_clip

    clip = make_sample_clip(tmp_path / "ten_vfr.mkv", width=64, height=32, seconds=1.0, fps=12, bit_depth=10,
                            vfr=True, codec="h265", audio=True)
    source = probe_video(clip)
    assert source.is_vfr and source.bit_depth == 10
    out = tmp_path / "ten_vfr_x2.mkv"
    outcome = run_enhance(workspace, EnhanceRequest(
        input=clip, output=out, chunk=ChunkPlanConfig(chunk_seconds=0.4), upscale=UpscaleConfig(scale=2),
        encode=EncodeConfig(codec="h265", preset="ultrafast"), device="cpu"))
    assert outcome.success, outcome.error
    result = probe_video(out)
    assert result.bit_depth == 10 and (result.width, result.height) == (128, 64)
    assert result.frame_count == source.frame_count and len(result.audio_streams) == 1
    src_times = frame_timestamps(clip, source) * float(source.time_base)
    out_times = frame_timestamps(out, result) * float(result.time_base)
    assert abs((src_times - src_times[0]) - (out_times - out_times[0])).max() < 0.002


def test_one_frame_video(workspace, tmp_path):
    from stages.quality.samples import make_sample_clip

    clip = make_sample_clip(tmp_path / "one.mp4", width=40, height=30, seconds=1 / 24, fps=24, audio=True)
    outcome = run_enhance(workspace, EnhanceRequest(input=clip, output=tmp_path / "one_x4.mp4", device="cpu"))
    assert outcome.success, outcome.error
    result = probe_video(tmp_path / "one_x4.mp4")
    assert result.frame_count == 1 and (result.width, result.height) == (160, 120)
    assert outcome.report["flicker"]["output"] is None  # no pair of frames to compare


def test_ncnn_backend_end_to_end_matches_torch(workspace, tiny_clip, tmp_path):
    """--backend ncnn runs the same model through ncnn: its upscaled chunks match the torch fp32 ones within
    fp16 tolerance, and the backend is part of the chunk key (the torch chunks are not reused for ncnn)."""
    pytest.importorskip("ncnn")
    import numpy as np

    from stages.media.chunkio import read_frames

    def chunks(outcome) -> list:
        meta = _metadata(DagsterInstance.get(), "upscale", outcome.partition_key)
        assert meta["chunks_computed"] >= 1
        return meta

    request = _request(tiny_clip, tmp_path / "torch.mp4", backend="torch")
    request = EnhanceRequest(**{**request.__dict__, "precision": "fp32"})
    torch_run = run_enhance(workspace, request)
    assert torch_run.success, torch_run.error
    assert chunks(torch_run)["backend"] == "torch"
    ncnn_request = EnhanceRequest(**{**request.__dict__, "output": tmp_path / "ncnn.mp4",
                                     "upscale": UpscaleConfig(backend="ncnn")})
    ncnn_run = run_enhance(workspace, ncnn_request)
    assert ncnn_run.success, ncnn_run.error
    meta = chunks(ncnn_run)
    assert meta["backend"] == "ncnn" and "ncnn" in meta["backend_reason"]
    assert probe_video(tmp_path / "ncnn.mp4").frame_count == probe_video(tiny_clip).frame_count
    store = workspace.chunk_store()
    folder = store.root / "upscale"
    manifests = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    by_start: dict[int, list[str]] = {}
    for m in manifests:
        by_start.setdefault(m["start_frame"], []).append(m["path"])
    assert by_start and all(len(paths) == 2 for paths in by_start.values())
    for a_path, b_path in by_start.values():
        for a, b in zip(read_frames(store.root / a_path), read_frames(store.root / b_path), strict=True):
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_scale_one_passes_frames_through_without_a_model(workspace, tiny_clip, tmp_path):
    """--scale 1 (interpolation-only or re-encode jobs): no model is loaded, the output keeps the source size."""
    out = tmp_path / "same.mp4"
    outcome = run_enhance(workspace, _request(tiny_clip, out, scale=1, model="no-such-model"))
    assert outcome.success, outcome.error
    source, result = probe_video(tiny_clip), probe_video(out)
    assert (result.width, result.height, result.frame_count) == (source.width, source.height, source.frame_count)
    meta = _metadata(DagsterInstance.get(), "upscale", outcome.partition_key)
    assert meta["model"] == "none" and meta["model_calls"] == 0
    assert outcome.report["model"] == "none"


def test_flow_coherence_end_to_end_is_continuous_across_chunks(workspace, tiny_clip, tmp_path):
    """--temporal flow: every chunk is coherence-filtered, starting from the previous chunk's last output frame,
    so processing chunk by chunk equals one pass over the whole video; a rerun reuses every coherent chunk."""
    import numpy as np

    from orchestration.resources.config import TemporalConfig
    from stages.media.chunkio import read_frames
    from stages.ops.cohere.temporal import TemporalFilter, TemporalSettings

    request = EnhanceRequest(**{**_request(tiny_clip, tmp_path / "flow.mp4").__dict__,
                                "temporal": TemporalConfig(method="flow")})
    outcome = run_enhance(workspace, request)
    assert outcome.success, outcome.error
    instance = DagsterInstance.get()
    meta = _metadata(instance, "cohere", outcome.partition_key)
    assert meta["method"] == "flow" and meta["chunks_computed"] >= 3
    assert probe_video(tmp_path / "flow.mp4").frame_count == probe_video(tiny_clip).frame_count

    store = workspace.chunk_store()

    def stage_frames(stage: str) -> list:
        manifests = sorted((json.loads(p.read_text()) for p in (store.root / stage).glob("*.json")),
                           key=lambda m: m["start_frame"])
        return [frame for m in manifests for frame in read_frames(store.root / m["path"])]

    upscaled, sources, coherent = stage_frames("upscale"), stage_frames("frames"), stage_frames("cohere")
    one_pass = TemporalFilter(TemporalSettings(method="flow"))
    expected = [one_pass.process(hr, lr) for hr, lr in zip(upscaled, sources, strict=True)]
    assert len(coherent) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(coherent, expected, strict=True))

    again = run_enhance(workspace, EnhanceRequest(**{**request.__dict__, "output": tmp_path / "again.mp4"}))
    assert again.success, again.error
    assert _metadata(instance, "cohere", outcome.partition_key)["chunks_computed"] == 0


def test_interpolation_x2_doubles_fps_keeps_duration_and_joins_chunks_exactly(workspace, tiny_clip, tmp_path):
    """--interpolate 2 (flow): twice the frames at twice the rate, same duration within one output frame, audio
    kept; across chunk boundaries no frame is missing or doubled: every even output frame is the matching
    upscaled source frame and every odd one a new frame between two consecutive ones."""
    import numpy as np

    from orchestration.resources.config import InterpolateConfig, TemporalConfig
    from stages.media.chunkio import read_frames

    out = tmp_path / "x2.mp4"
    request = EnhanceRequest(**{**_request(tiny_clip, out, scale=2).__dict__,
                                "interpolate": InterpolateConfig(method="flow", factor=2),
                                "temporal": TemporalConfig(method="none")})
    outcome = run_enhance(workspace, request)
    assert outcome.success, outcome.error
    source, result = probe_video(tiny_clip), probe_video(out)
    assert result.frame_count == 2 * source.frame_count
    assert abs(result.avg_fps - 2 * source.avg_fps) < 0.01
    assert abs(result.duration - source.duration) <= 1 / result.avg_fps + 1e-6
    assert len(result.audio_streams) == 1
    meta = _metadata(DagsterInstance.get(), "interpolate", outcome.partition_key)
    assert meta["method"] == "flow" and meta["frames_out"] == 2 * source.frame_count and meta["chunks_computed"] >= 3

    store = workspace.chunk_store()

    def stage_frames(stage: str) -> list:
        manifests = sorted((json.loads(p.read_text()) for p in (store.root / stage).glob("*.json")),
                           key=lambda m: m["start_frame"])
        return [frame for m in manifests for frame in read_frames(store.root / m["path"])]

    upscaled, interpolated = stage_frames("upscale"), stage_frames("interpolate")
    assert len(interpolated) == 2 * len(upscaled)
    for k, frame in enumerate(upscaled):
        assert np.array_equal(interpolated[2 * k], frame)
    for k in range(len(upscaled) - 1):
        middle = interpolated[2 * k + 1].astype(int)
        lo = np.minimum(upscaled[k], upscaled[k + 1]).astype(int) - 40
        hi = np.maximum(upscaled[k], upscaled[k + 1]).astype(int) + 40
        assert ((middle >= lo) & (middle <= hi)).mean() > 0.95  # a frame between its neighbours, not a copy of
        assert not np.array_equal(interpolated[2 * k + 1], upscaled[k])  # the previous one


def test_interpolation_above_120_fps_is_refused_before_any_work(workspace, tiny_clip, tmp_path):
    from orchestration.launch.validate import validate_request
    from orchestration.resources.config import InterpolateConfig
    from stages.errors import SettingsError

    request = EnhanceRequest(**{**_request(tiny_clip, tmp_path / "never.mp4").__dict__,
                                "interpolate": InterpolateConfig(method="flow", fps="144")})
    with pytest.raises(SettingsError, match="120"):
        validate_request(request)


def test_vfr_source_interpolated_to_a_constant_rate(workspace, tmp_path):
    """A VFR source is interpolated on its real timestamps to a constant 30 fps with the same duration."""
    from orchestration.resources.config import InterpolateConfig
    from stages.quality.samples import make_sample_clip

    clip = make_sample_clip(tmp_path / "vfr.mkv", width=64, height=48, seconds=1.5, fps=12, vfr=True, audio=True)
    source = probe_video(clip)
    assert source.is_vfr
    out = tmp_path / "cfr30.mp4"
    request = EnhanceRequest(**{**_request(clip, out, scale=1).__dict__,
                                "interpolate": InterpolateConfig(method="flow", fps="30")})
    outcome = run_enhance(workspace, request)
    assert outcome.success, outcome.error
    result = probe_video(out)
    assert not result.is_vfr and abs(result.avg_fps - 30) < 0.01
    assert abs(result.duration - source.duration) <= 1 / 30 + 1e-6
    assert result.frame_count == round(source.duration * 30)


def test_interpolation_never_crosses_a_scene_cut(workspace, tmp_path):
    """At a scene cut the nearer frame is repeated: no output frame is a mix of the two scenes."""
    import numpy as np

    from orchestration.resources.config import InterpolateConfig
    from stages.media.chunkio import read_frames
    from stages.quality.samples import make_sample_clip

    clip = make_sample_clip(tmp_path / "cut.mp4", width=64, height=48, seconds=2.0, fps=12, scene_cut_at=1.0)
    request = EnhanceRequest(**{**_request(clip, tmp_path / "cut_x4.mp4", scale=1).__dict__,
                                "chunk": ChunkPlanConfig(chunk_seconds=10.0),
                                "interpolate": InterpolateConfig(method="blend", factor=4)})
    outcome = run_enhance(workspace, request)
    assert outcome.success, outcome.error
    store = workspace.chunk_store()
    sources = [f for p in sorted((store.root / "frames").glob("*.json"))
               for f in read_frames(store.root / json.loads(p.read_text())["path"])]
    outputs = [f for p in sorted((store.root / "interpolate").glob("*.json"))
               for f in read_frames(store.root / json.loads(p.read_text())["path"])]
    assert len(outputs) == 4 * len(sources)
    cut = 12  # first frame of the second scene
    for frame in outputs[4 * (cut - 1):4 * cut]:  # everything between the last frame before the cut and the cut
        assert np.array_equal(frame, sources[cut - 1]) or np.array_equal(frame, sources[cut])


def test_user_reference_adds_full_reference_figures_and_a_grade(workspace, tmp_path):
    """--reference: the report gets per-frame PSNR/SSIM (Y, RGB), VMAF and a grade against the user's video."""
    from orchestration.resources.config import MetricsConfig
    from stages.quality.samples import make_sample_clip

    reference = make_sample_clip(tmp_path / "ref.mp4", width=128, height=96, seconds=1.0, fps=12)
    low = make_sample_clip(tmp_path / "low.mp4", width=64, height=48, seconds=1.0, fps=12)
    request = EnhanceRequest(**{**_request(low, tmp_path / "up.mp4", scale=2).__dict__,
                                "metrics": MetricsConfig(reference_path=str(reference), vmaf=True)})
    outcome = run_enhance(workspace, request)
    assert outcome.success, outcome.error
    summary = outcome.report
    frames = pq.read_table(summary["files"]["frames_parquet"]).to_pydict()
    assert {"psnr_y", "psnr_rgb", "ssim_y", "ssim_rgb", "vmaf"} <= set(frames)
    assert all(15 < v < 60 for v in frames["psnr_y"]) and all(0 < v <= 1 for v in frames["ssim_y"])
    quality = summary["quality"]
    assert quality["psnr_y"] > 15 and quality["grade"]["grade"] in ("Excellent", "Très bon", "Bon", "Acceptable",
                                                                      "Insuffisant")
    assert summary["reference"]["path"] == str(reference)


def test_missing_reference_is_refused_before_any_work(workspace, tiny_clip, tmp_path):
    from orchestration.launch.validate import validate_request
    from orchestration.resources.config import MetricsConfig
    from stages.errors import StageError

    request = EnhanceRequest(**{**_request(tiny_clip, tmp_path / "x.mp4").__dict__,
                                "metrics": MetricsConfig(reference_path=str(tmp_path / "nope.mp4"))})
    with pytest.raises(StageError, match="nope.mp4"):
        validate_request(request)
