"""The Dagster definitions load and have the shape DESIGN.md describes."""

from __future__ import annotations

from dagster import AssetKey, Definitions

from orchestration.definitions import build_definitions, defs
from orchestration.graphs.enhance import videos_partitions

EXPECTED = ["video_probe", "chunk_plan", "frame_chunks", "upscale", "interpolate",
            "cohere", "encoded_video", "metrics_report"]


def test_definitions_load():
    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("enhance_job")
    assert job.partitions_def == videos_partitions
    assert videos_partitions.name == "videos"


def test_assets_and_lineage():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(EXPECTED) <= keys
    assert graph.get(AssetKey("upscale")).parent_keys >= {AssetKey("frame_chunks"), AssetKey("video_probe")}
    assert AssetKey("cohere") in graph.get(AssetKey("encoded_video")).parent_keys
    for name in EXPECTED:
        node = graph.get(AssetKey(name))
        assert node.description, f"{name} has no description"


def test_model_asset_runs_in_gpu_pool():
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey("upscale")).pools == {"gpu"}
    assert not graph.get(AssetKey("frame_chunks")).pools


def test_build_for_other_workspace(tmp_path):
    built = build_definitions(str(tmp_path))
    assert built.resolve_job_def("enhance_job") is not None
