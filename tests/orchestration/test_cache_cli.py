"""`vup cache info` and `vup cache prune` on a workspace's chunk store, and the size budget applied when a run ends
(a run holds a lease while it goes on; a pruned chunk is made again by the next run)."""

from __future__ import annotations

import gc
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from orchestration.cli.commands import main
from orchestration.launch.request import EnhanceRequest
from orchestration.launch.runner import run_enhance
from orchestration.resources.config import ChunkPlanConfig, EncodeConfig, UpscaleConfig
from stages.media.chunkio import ChunkWriter
from stages.store.budget import BUDGET_ENV
from stages.store.cache import cache_info, scan_store
from stages.store.chunk_store import ChunkContent, ChunkStore
from stages.store.leases import RunLease, live_leases, owner_records

KEY = "0123456789abcdef"


def _produce(tmp):
    with ChunkWriter(tmp, 16, 8, 8) as writer:
        for i in range(3):
            writer.write(np.full((8, 16, 3), i * 10, dtype=np.uint8))
    return ChunkContent(3, (0, 1000, 2000), 16, 8, 8)


@pytest.fixture
def filled(workspace):
    """Two chunks of video KEY (one 40 days old), one of no recorded job, one in an old folder."""
    with RunLease(workspace.chunks, job="enhance_job", owner=KEY, label="holiday.mp4") as lease:
        store = ChunkStore(workspace.chunks, journal=lease.journal)
        store.put("frames", "1" * 32, _produce, index=0, start_frame=0)
        store.put("upscale", "2" * 32, _produce, index=0, start_frame=0)
    old = time.time() - 40 * 86400
    os.utime(workspace.chunks / "frames" / f"{'1' * 32}.json", (old, old))
    ChunkStore(workspace.chunks).put("upscale", "3" * 32, _produce, index=0, start_frame=0)
    ChunkStore(workspace.chunks).put("upscaled", "4" * 32, _produce, index=0, start_frame=0)
    return workspace


def _ids(workspace) -> set[str]:
    return {c.id for c in scan_store(workspace.chunks).chunks}


def test_info_shows_sizes_per_stage_video_age_and_orphans(filled, capsys):
    assert main(["cache", "info", "--workspace", str(filled.root)]) == 0
    out = capsys.readouterr().out
    for words in ("chunk store:", "budget:", "per stage folder:", "upscale", f"{KEY} enhance_job (holiday.mp4)",
                  "not recorded for a job", "over 30 days", "old folder (now upscale)", "vup cache prune --orphaned"):
        assert words in out, words
    assert main(["cache", "info", "--json", "--workspace", str(filled.root)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chunks"] == 4 and data["by_stage"]["upscale"]["chunks"] == 2
    assert [(o["owner"], o["label"], o["chunks"]) for o in data["by_owner"]] == [(KEY, "holiday.mp4", 2)]
    assert data["orphaned_total"]["chunks"] == 1


def test_prune_by_age_video_orphaned_and_dry_run(filled, capsys):
    ws = ["--workspace", str(filled.root)]
    assert main(["cache", "prune", "--orphaned", "--dry-run", *ws]) == 0
    assert "would free" in capsys.readouterr().out and len(_ids(filled)) == 4
    assert main(["cache", "prune", "--orphaned", *ws]) == 0
    assert "freed" in capsys.readouterr().out and f"upscaled/{'4' * 32}" not in _ids(filled)
    assert main(["cache", "prune", "--older-than", "30d", "--json", *ws]) == 0
    assert json.loads(capsys.readouterr().out)["freed_chunks"] == 1
    assert main(["cache", "prune", "--video", KEY[:6], *ws]) == 0
    assert _ids(filled) == {f"upscale/{'3' * 32}"} and owner_records(filled.chunks) == []


def test_prune_without_options_goes_down_to_the_budget_of_the_workspace_file(filled, capsys, monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    filled.config_file.write_text('[cache]\nmax_size = "0"\n')
    assert main(["cache", "prune", "--workspace", str(filled.root)]) == 0
    out = capsys.readouterr().out
    assert "down to the size budget" in out and "vup.toml" in out and _ids(filled) == set()
    filled.config_file.write_text('[cache]\nmax_size = "off"\n')
    assert main(["cache", "prune", "--workspace", str(filled.root)]) == 2
    assert "the size budget is off" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--older-than", "30"], "'30' is not a duration; write a number and a unit"),
    (["--max-size", "big"], "--max-size 'big' is not a size"),
    (["--max-size", "off"], "--max-size needs a size"),
    (["--video", "ffff"], "'ffff' has no chunks recorded in this store"),
])
def test_bad_prune_options_say_what_to_write(filled, capsys, args, message):
    assert main(["cache", "prune", *args, "--workspace", str(filled.root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cache: ") and message in err
    assert len(_ids(filled)) == 4


def test_a_run_holds_a_lease_then_the_budget_prunes_and_a_rerun_makes_chunks_again(
        workspace, tiny_clip, tmp_path, monkeypatch):
    request = EnhanceRequest(input=tiny_clip, output=tmp_path / "out.mp4", chunk=ChunkPlanConfig(chunk_seconds=0.5),
                             upscale=UpscaleConfig(scale=2), encode=EncodeConfig(crf=30, preset="ultrafast"),
                             device="cpu")
    leases: list[str | None] = []

    def on_event(event: dict) -> None:
        leases.extend(view.owner for view in live_leases(workspace.chunks, reap=False))

    monkeypatch.setenv(BUDGET_ENV, "off")
    first = run_enhance(workspace, request, on_event=on_event)
    assert first.success, first.error
    assert set(leases) == {first.partition_key}  # held while the run went on
    assert live_leases(workspace.chunks) == []  # and released when it ended
    [owner] = cache_info(workspace.chunks).by_owner
    assert owner.owner == first.partition_key and owner.label == Path(tiny_clip).name
    made = {c.id for c in scan_store(workspace.chunks).chunks}
    assert {i.split("/")[0] for i in made} >= {"frames", "upscale"}

    monkeypatch.setenv(BUDGET_ENV, "1")  # one byte: everything goes once no run holds it
    events: list[dict] = []
    second = run_enhance(workspace, request, on_event=events.append)
    assert second.success, second.error
    assert all(e["reused"] for e in events if e["stage"] in ("frames", "upscale"))  # the budget waited for the end
    assert scan_store(workspace.chunks).chunks == ()

    events.clear()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    third = run_enhance(workspace, replace(request, output=blocked / "out.mp4"), on_event=events.append)
    assert not third.success  # it fails at the delivery, once its chunks are made
    assert not any(e["reused"] for e in events if e["stage"] in ("frames", "upscale"))  # made again
    left = {c.id.split("/")[0] for c in scan_store(workspace.chunks).chunks}
    assert left >= {"frames", "upscale"}  # and a failed run keeps its chunks for the rerun, whatever the budget
    gc.collect()
    assert live_leases(workspace.chunks) == []  # its lease went with the run's resources
    assert [o.owner for o in cache_info(workspace.chunks).by_owner] == [third.partition_key]


def test_info_still_shows_the_store_when_the_budget_cannot_be_read(filled, capsys, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "a lot")
    assert main(["cache", "info", "--workspace", str(filled.root)]) == 0
    out = capsys.readouterr().out
    assert f"budget: not applied: cache: {BUDGET_ENV} 'a lot' is not a size" in out and "per stage folder:" in out


def test_the_system_tab_shows_the_cache_size_and_how_to_free_it(filled):
    from orchestration.launch.service import system_info

    row = dict(system_info(filled, "http://127.0.0.1:3000"))["chunk cache"]
    assert "in 4 chunks, budget" in row and "vup cache prune" in row
