"""Load: jobs submitted at once through the page, the CLI and the inbox of one live `vup serve` all finish
correctly; the gpu pool never runs two model steps at once; runs of the same partition at the same time neither
corrupt nor read each other's chunks and values.

The scenario is benchmarks/load.py's (``python -m benchmarks.load`` prints it as a table with timings); here it
is asserted, on smaller clips. The other tests pin each cause found while building it: the chunk lock, Dagster's
slot claim on SQLite, the run-scoped hand-over of asset values and the inbox's run status sensors.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    build_input_context,
    build_output_context,
    build_sensor_context,
    instance_for_test,
    job,
    op,
)

from benchmarks.load import (
    Interval,
    LoadOptions,
    check_chunks,
    claim_race,
    gpu_steps,
    markdown,
    max_pairwise_overlap,
    max_simultaneous,
    run_load,
)
from stages.store.chunk_store import ChunkContent, ChunkStore

pytest.importorskip("gradio_client")


# --------------------------------------------------------------------------------------- the whole scenario


@pytest.mark.slow
def test_five_jobs_at_once_through_page_cli_and_inbox(tmp_path):
    options = LoadOptions(jobs=5, width=64, height=48, seconds=1.0, fps=12, chunk_seconds=0.5, scale=2,
                          timeout=600)
    report = run_load(options, tmp_path)
    text = markdown(report, ["(test)"])
    assert report.problems == [], text
    assert report.failures == 0 and report.runs_in_instance == 5, text
    assert sorted(j["route"] for j in report.jobs) == ["cli", "cli", "inbox", "ui", "ui"]
    assert all(j["status"] == "SUCCESS" and j["output_ok"] for j in report.jobs), text
    # the gpu pool: every model step of every run (daemon run workers and `vup enhance` processes) ran alone
    assert report.gpu_steps == ["interpolate", "upscale"]
    assert report.model_steps == 2 * 5 and report.max_simultaneous_model_steps == 1, text
    assert report.gpu_pool_limit == 1 and not report.gpu_slots_claimed_after and not report.gpu_steps_pending_after
    # the same clip through the page and the CLI: one partition, byte-identical outputs, every chunk valid
    (group,) = report.same_partition_groups
    assert group["routes"] == ["ui", "cli"] and group["identical"], text
    assert report.chunks_checked > 0 and not report.chunk_problems and not report.chunk_temp_files


# ------------------------------------------------------------------------------------ the checks themselves


def test_overlap_measures():
    def span(start, end):
        return Interval("r", "s", start, end, True)

    back_to_back = [span(0, 1), span(1, 2), span(2, 3)]
    assert max_simultaneous(back_to_back) == 1 and max_pairwise_overlap(back_to_back) == 0
    nested = [span(0, 10), span(2, 3), span(2.5, 4)]
    assert max_simultaneous(nested) == 3 and max_pairwise_overlap(nested) == pytest.approx(1.5)
    assert max_simultaneous([]) == 0
    assert gpu_steps() == ["interpolate", "upscale"]


def test_check_chunks_finds_a_bad_chunk_and_a_leftover(tmp_path):
    store = ChunkStore(tmp_path / "chunks")
    for key in ("a" * 32, "b" * 32):

        def produce(tmp: Path, key: str = key) -> ChunkContent:
            tmp.write_bytes(key.encode())
            return ChunkContent(1, (0,), 2, 2, 8)

        store.put("frames", key, produce, index=0, start_frame=0)
    assert check_chunks(tmp_path / "chunks") == (2, [], [])
    media, _manifest = store.paths("frames", "b" * 32)
    media.write_bytes(b"x" * 32)
    (media.parent / f".{'c' * 32}.1.ab.tmp.nut").write_bytes(b"half")
    checked, problems, temps = check_chunks(tmp_path / "chunks")
    assert checked == 2 and problems == [f"frames/{'b' * 32}: sha256 differs from the manifest's"]
    assert temps == [f"frames/.{'c' * 32}.1.ab.tmp.nut"]


# ------------------------------------------------------------------------------------ one chunk, two writers


def _get_or_put(root: str, key: str, calls: str, start_at: float) -> tuple[str, int]:
    """What an asset does for one chunk: under the chunk's lock, reuse it or produce it (slowly, with bytes
    of its own, so two producers would write different files)."""
    store = ChunkStore(root)
    while time.time() < start_at:
        time.sleep(0.001)
    with store.lock("upscaled", key):
        record = store.get("upscaled", key)
        if record is None:

            def produce(tmp: Path) -> ChunkContent:
                with open(calls, "a", encoding="ascii") as handle:
                    handle.write(f"{os.getpid()}\n")
                time.sleep(0.3)
                tmp.write_bytes(os.urandom(4096))
                return ChunkContent(1, (0,), 2, 2, 8)

            record = store.put("upscaled", key, produce, index=0, start_frame=0)
    return record.sha256, record.size_bytes


def test_two_processes_get_or_put_the_same_chunk_at_once(tmp_path):
    root, key, calls = tmp_path / "chunks", "d" * 32, tmp_path / "calls.txt"
    start_at = time.time() + 2.0
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_get_or_put, [(str(root), key, str(calls), start_at)] * 2)
    assert len(calls.read_text().split()) == 1, "both processes produced the chunk"
    record = ChunkStore(root).get("upscaled", key)
    assert record is not None and results == [(record.sha256, record.size_bytes)] * 2
    assert check_chunks(root) == (1, [], [])


def test_threads_get_or_put_the_same_chunk_at_once(tmp_path):
    root, key, calls = tmp_path / "chunks", "e" * 32, tmp_path / "calls.txt"
    start_at = time.time() + 0.2
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(_get_or_put(str(root), key, str(calls), start_at)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls.read_text().split()) == 1
    record = ChunkStore(root).get("upscaled", key)
    assert record is not None and results == [(record.sha256, record.size_bytes)] * 4


# -------------------------------------------------------------------------------------- the gpu pool's claim


def test_two_claims_of_the_one_gpu_slot_at_the_same_moment_never_both_win(tmp_path):
    """Dagster's SQLite claim reads a free slot, then writes into it: two processes claiming at once could both
    take the one slot (31-34 races out of 40 without orchestration.resources.concurrency: `python -m benchmarks.load
    --claims`). Both steps are assigned first (what two claims at the same moment do) and then claim together,
    40 times."""
    doubles, info = claim_race(tmp_path, 40)
    assert doubles == 0
    assert info.slot_count == 1 and not info.claimed_slots and not info.pending_steps


# --------------------------------------------------------------------------- values handed between the steps


def test_each_run_loads_the_values_its_own_run_wrote(tmp_path):
    """Two runs of one partition: each loads its own upstream value, not the one the other run wrote last."""
    from orchestration.resources.io_managers import RunScopedIOManager

    manager = RunScopedIOManager(base_dir=str(tmp_path))
    key = AssetKey("upscale")

    def output(run_id):
        return build_output_context(asset_key=key, partition_key="p1", run_id=run_id)

    manager.handle_output(output("run-x2"), {"scale": 2})
    manager.handle_output(output("run-x4"), {"scale": 4})  # written last
    for run_id, scale in (("run-x2", 2), ("run-x4", 4)):
        context = build_input_context(asset_key=key, partition_key="p1", upstream_output=output(run_id))
        assert manager.load_input(context) == {"scale": scale}
    # a run that did not produce it (a partial run from the Dagster UI) gets the latest of any run
    stranger = build_input_context(asset_key=key, partition_key="p1", upstream_output=output("run-other"))
    assert manager.load_input(stranger) == {"scale": 4}
    assert pickle.loads((tmp_path / "upscale" / "p1").read_bytes()) == {"scale": 4}
    assert not list(tmp_path.rglob(".*.tmp"))
    with pytest.raises(FileNotFoundError, match="materialize the upstream asset"):
        manager.load_input(build_input_context(asset_key=AssetKey("video_probe"), partition_key="p1",
                                               upstream_output=output("run-x2")))


def test_the_definitions_hand_values_over_per_run():
    from orchestration.definitions import build_definitions
    from orchestration.resources.io_managers import RunScopedIOManager

    assert isinstance(build_definitions("/tmp/ws").resources["io_manager"], RunScopedIOManager)


# ------------------------------------------------------------------------------- inbox runs among other runs


@op
def _noop() -> None:
    return None


@job
def _tiny():
    _noop()


def test_inbox_finisher_handles_a_tick_with_an_inbox_run_and_a_page_run(tmp_path):
    """An inbox run and a page run ending together reach inbox_run_succeeded in one tick; Dagster failed that
    tick ("received both DagsterRunReaction and SkipReason") when the page run gave a SkipReason."""
    from orchestration.resources.core import WorkspaceResource
    from orchestration.resources.workspace import Workspace
    from orchestration.sensors.inbox import (
        TAG_INBOX_PATH,
        TAG_LAUNCHED_BY,
        TAG_SHA256,
        TAG_SOURCE,
        inbox_run_succeeded,
    )
    from stages.store.fsutil import sha256_file

    workspace = Workspace(tmp_path / "ws").ensure()
    workspace.inbox.mkdir(parents=True)
    video = workspace.inbox / "a.mp4"
    video.write_bytes(b"stands for a video")
    resources = {"workspace": WorkspaceResource(root=str(workspace.root))}
    with instance_for_test() as instance:
        first = inbox_run_succeeded.evaluate_tick(build_sensor_context(instance=instance, resources=resources))
        _tiny.execute_in_process(instance=instance, tags={TAG_LAUNCHED_BY: "inbox", TAG_SOURCE: "a.mp4",
                                                          TAG_INBOX_PATH: str(video), TAG_SHA256: sha256_file(video)})
        _tiny.execute_in_process(instance=instance, tags={TAG_LAUNCHED_BY: "ui"})
        tick = inbox_run_succeeded.evaluate_tick(
            build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
    assert len(tick.dagster_run_reactions) == 2 and all(r.error is None for r in tick.dagster_run_reactions)
    assert (workspace.inbox_done / "a.mp4").is_file() and not video.exists()
