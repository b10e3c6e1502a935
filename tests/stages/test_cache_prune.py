"""The chunk store's size: last-used times, the scan (per stage, per owner, by age, orphaned chunks), pruning (by age,
size, owner, orphaned; never a chunk a running job holds), leases, human sizes and durations, and the budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stages.errors import SettingsError
from stages.media.chunking import ChunkSpec, plan_chunks
from stages.media.chunkio import ChunkWriter, read_frames
from stages.media.probe import VideoInfo, frame_timestamps, probe_video
from stages.ops.contract import FrameOp
from stages.ops.driver import run_op
from stages.ops.frames import FramesOp
from stages.quality.samples import make_sample_clip
from stages.store.budget import (
    BUDGET_ENV,
    CacheBudget,
    default_budget,
    format_duration,
    parse_budget,
    parse_duration,
    parse_size,
    resolve_budget,
)
from stages.store.cache import cache_info, enforce_budget, prune, scan_store
from stages.store.chunk_store import ChunkContent, ChunkStore
from stages.store.fsutil import file_lock, sha256_file, try_file_lock
from stages.store.leases import LEASES, RunLease, live_leases, owner_records
from stages.store.versions import STAGE_VERSIONS

DAY = 86400.0


def _producer(count: int = 3, value: int = 0):
    def produce(tmp):
        with ChunkWriter(tmp, 16, 8, 8) as writer:
            for i in range(count):
                writer.write(np.full((8, 16, 3), (value + i * 10) % 256, dtype=np.uint8))
        return ChunkContent(count, tuple(range(0, count * 1000, 1000)), 16, 8, 8)

    return produce


def _put(store: ChunkStore, stage: str, key: str, age_days: float = 0.0, value: int = 0):
    record = store.put(stage, key, _producer(value=value), index=0, start_frame=0)
    if age_days:
        stamp = time.time() - age_days * DAY
        os.utime(store.paths(stage, key)[1], (stamp, stamp))
    return record


def _keys(root: Path) -> set[str]:
    return {c.id for c in scan_store(root).chunks}


# ------------------------------------------------------------------------------------------------ sizes, budget


@pytest.mark.parametrize("text,expected", [("50G", 50 * 10**9), ("50 GB", 50 * 10**9), ("1.5T", 15 * 10**11),
                                           ("500MB", 500 * 10**6), ("40GiB", 40 * 2**30), ("12k", 12_000),
                                           ("1000", 1000), ("0", 0)])
def test_sizes_parse(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "fifty", "50X", "-5G", "5 G B", "G"])
def test_a_bad_size_says_what_to_write(text):
    with pytest.raises(SettingsError, match=r"is not a size; write e\.g\. 50G"):
        parse_size(text)


@pytest.mark.parametrize("text,expected", [("30d", 30 * DAY), ("12h", 12 * 3600), ("90m", 5400), ("90min", 5400),
                                           ("45s", 45), ("2w", 14 * DAY), ("1d12h", 1.5 * DAY), ("0", 0)])
def test_durations_parse(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", "thirty days", "30y", "d", "1d and 2h", "-3d"])
def test_a_bad_duration_says_what_to_write(text):
    with pytest.raises(SettingsError, match="is not a duration; write a number and a unit"):
        parse_duration(text)


def test_durations_read_for_people():
    assert format_duration(40) == "40 s" and format_duration(720) == "12 min"
    assert format_duration(5 * 3600) == "5 h" and format_duration(3 * DAY) == "3 days"


def test_budget_comes_from_the_variable_then_the_workspace_file_then_the_default(tmp_path):
    config = tmp_path / "vup.toml"
    default = resolve_budget(tmp_path, config, env={})
    assert default == default_budget(tmp_path) and default.max_bytes <= 50 * 10**9
    config.write_text('[cache]\nmax_size = "20G"\n')
    assert resolve_budget(tmp_path, config, env={}).max_bytes == 20 * 10**9
    assert "vup.toml" in resolve_budget(tmp_path, config, env={}).source
    assert resolve_budget(tmp_path, config, env={BUDGET_ENV: "off"}).max_bytes is None
    assert resolve_budget(tmp_path, config, env={BUDGET_ENV: "3G"}).describe() == f"3.0 GB ({BUDGET_ENV})"
    share = parse_budget("10%", tmp_path)
    assert share is not None and share > 0
    with pytest.raises(SettingsError, match=f"{BUDGET_ENV} 'lots' is not a size"):
        resolve_budget(tmp_path, config, env={BUDGET_ENV: "lots"})
    with pytest.raises(SettingsError, match="not a share of the disk"):
        parse_budget("150%", tmp_path)
    config.write_text("[cache\nmax_size = 3")
    with pytest.raises(SettingsError, match="is not readable TOML"):
        resolve_budget(tmp_path, config, env={})
    config.write_text('[cache]\nmax_size = "big"\n')
    with pytest.raises(SettingsError, match=r"\[cache\] max_size in .*vup.toml 'big' is not a size"):
        resolve_budget(tmp_path, config, env={})


# ------------------------------------------------------------------------------------------------ last used, locks


def test_a_reuse_touches_the_manifest_and_notes_the_chunk_in_the_journal(tmp_path):
    store = ChunkStore(tmp_path)
    _put(store, "frames", "a" * 32, age_days=10)
    manifest = store.paths("frames", "a" * 32)[1]
    assert time.time() - manifest.stat().st_mtime > 9 * DAY
    journal = tmp_path / "journal"
    _, reused = ChunkStore(tmp_path, journal=journal).get_or_put("frames", "a" * 32, _producer(), index=0,
                                                                 start_frame=0)
    assert reused and time.time() - manifest.stat().st_mtime < 60
    assert journal.read_text().splitlines() == [f"frames/{'a' * 32}"]
    written = json.loads(manifest.read_text())["made_with"]
    assert written["stage_version"] == STAGE_VERSIONS["frames"] and written["chunk_format"]


def test_a_lock_file_deleted_by_its_holder_is_never_held_twice(tmp_path):
    path = tmp_path / "k.lock"
    got = threading.Event()
    release = threading.Event()

    def waiter():
        with file_lock(path):
            got.set()
            release.wait(10)

    with file_lock(path):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.2)
        assert not got.is_set()
        path.unlink()  # what pruning does while it holds the lock
    assert got.wait(10)
    with try_file_lock(path) as held:  # the waiter locked the file now at the path, so this one is held
        assert held is False
    release.set()
    thread.join(10)
    with try_file_lock(path) as held:
        assert held is True


# ------------------------------------------------------------------------------------------------ scan and info


def test_info_sums_per_stage_and_age_and_calls_out_orphaned_chunks(tmp_path):
    store = ChunkStore(tmp_path)
    _put(store, "frames", "1" * 32)
    _put(store, "upscale", "2" * 32, age_days=3)
    _put(store, "upscale", "3" * 32, age_days=40)
    # orphans: a folder an older version used, an older stage version, an interrupted write, an old temp file
    _put(store, "upscaled", "4" * 32)
    _put(store, "cohere", "5" * 32)
    manifest = store.paths("cohere", "5" * 32)[1]
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "made_with": {**data["made_with"], "stage_version": "0"}}))
    (tmp_path / "frames" / f"{'6' * 32}.nut").write_bytes(b"x" * 100)
    temp = tmp_path / "frames" / f".{'7' * 32}.123.abcd.tmp.nut"
    temp.write_bytes(b"y" * 50)
    os.utime(temp, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    (tmp_path / "frames" / f".{'8' * 32}.456.abcd.tmp.nut").write_bytes(b"z" * 70)  # a write going on now

    info = cache_info(tmp_path, budget=CacheBudget(10**6, "1M", "test"))
    sizes = {c.id: c.bytes for c in scan_store(tmp_path).chunks}
    assert info.total_bytes == sum(sizes.values()) + 70 and info.writing_bytes == 70
    assert info.by_stage["upscale"].chunks == 2 and info.by_stage["upscaled"].chunks == 1
    assert info.by_age["under 1 day"].chunks == 4 and info.by_age["1-7 days"].chunks == 2
    assert info.by_age["over 30 days"].chunks == 1
    reasons = {reason: usage.chunks for reason, usage in info.orphaned.items()}
    assert reasons == {"old folder (now upscale)": 1, f"old cohere version 0 (now {STAGE_VERSIONS['cohere']})": 1,
                       "chunk file without a manifest (an interrupted write)": 1,
                       "temp file of a write that stopped": 1}
    assert info.orphaned_total.chunks == 4
    assert info.unattributed.chunks == 6  # no job recorded them
    as_json = json.loads(json.dumps(info.to_dict()))
    assert as_json["budget"]["max_bytes"] == 10**6 and as_json["orphaned_total"]["chunks"] == 4


def test_a_manifest_written_before_versions_were_recorded_counts_as_current(tmp_path):
    store = ChunkStore(tmp_path)
    _put(store, "frames", "1" * 32)
    manifest = store.paths("frames", "1" * 32)[1]
    data = json.loads(manifest.read_text())
    del data["made_with"]
    manifest.write_text(json.dumps(data))
    assert cache_info(tmp_path).orphaned == {}
    assert store.get("frames", "1" * 32) is not None


# ------------------------------------------------------------------------------------------------ prune


def test_prune_by_age_by_size_orphans_first_then_least_recently_used(tmp_path):
    store = ChunkStore(tmp_path)
    for i, age in enumerate((1, 5, 10, 20)):
        _put(store, "upscale", f"{i}" * 32, age_days=age)
    _put(store, "upscaled", "9" * 32)  # orphaned, but used just now
    one = scan_store(tmp_path).chunks[0].bytes

    dry = prune(tmp_path, older_than=7 * DAY, dry_run=True)
    assert dry.freed_chunks == 2 and dry.dry_run and len(_keys(tmp_path)) == 5
    assert "would free" in dry.summary()
    aged = prune(tmp_path, older_than=7 * DAY)
    assert aged.freed_chunks == 2 and _keys(tmp_path) == {f"upscale/{'0' * 32}", f"upscale/{'1' * 32}",
                                                          f"upscaled/{'9' * 32}"}
    sized = prune(tmp_path, max_bytes=one)
    assert sized.freed_chunks == 2 and sized.after_bytes <= one
    assert _keys(tmp_path) == {f"upscale/{'0' * 32}"}  # the orphan went first, then the older one
    assert not (tmp_path / "upscaled").exists()  # an old folder left empty is removed
    assert "freed" in sized.summary() and "limit" in sized.summary()
    assert not list((tmp_path / "upscale").glob("*.lock"))  # no lock file left behind for deleted chunks


def test_prune_keeps_the_chunks_it_is_told_to_keep(tmp_path):
    store = ChunkStore(tmp_path)
    _put(store, "frames", "1" * 32, age_days=9)
    _put(store, "frames", "2" * 32)
    result = enforce_budget(tmp_path, CacheBudget(0, "0", "test"), keep={f"frames/{'1' * 32}"})
    assert result.freed_chunks == 1 and _keys(tmp_path) == {f"frames/{'1' * 32}"}


def test_prune_says_what_it_needs(tmp_path):
    with pytest.raises(SettingsError, match="say what to prune"):
        prune(tmp_path)
    with pytest.raises(SettingsError, match="has no chunks recorded"):
        (tmp_path / "frames").mkdir()
        prune(tmp_path, owner="0123456789abcdef")


def test_prune_skips_a_chunk_whose_lock_a_job_holds(tmp_path):
    store = ChunkStore(tmp_path)
    _put(store, "frames", "1" * 32, age_days=2)
    _put(store, "frames", "2" * 32, age_days=2)
    with store.lock("frames", "1" * 32):
        result = prune(tmp_path, max_bytes=0)
    assert result.freed_chunks == 1 and result.skipped_chunks == 1
    assert _keys(tmp_path) == {f"frames/{'1' * 32}"}
    assert store.get("frames", "1" * 32) is not None


def test_a_pruned_chunk_is_a_miss_and_is_made_again(tmp_path):
    store = ChunkStore(tmp_path)
    first = _put(store, "frames", "1" * 32)
    (Path(first.path)).unlink()  # the manifest now points at a deleted chunk file
    again, reused = store.get_or_put("frames", "1" * 32, _producer(), index=0, start_frame=0)
    assert not reused and again.sha256 == first.sha256
    prune(tmp_path, max_bytes=0)
    assert _keys(tmp_path) == set()
    third, reused = store.get_or_put("frames", "1" * 32, _producer(), index=0, start_frame=0)
    assert not reused and third.sha256 == first.sha256


def test_leases_protect_a_running_jobs_chunks_and_record_them_for_their_owner(tmp_path):
    with RunLease(tmp_path, job="enhance_job", owner="0123456789abcdef", label="clip.mp4") as lease:
        store = ChunkStore(tmp_path, journal=lease.journal)
        _put(store, "frames", "1" * 32, age_days=3)
        _put(ChunkStore(tmp_path), "frames", "2" * 32, age_days=3)  # another caller, no lease
        assert [view.owner for view in live_leases(tmp_path)] == ["0123456789abcdef"]
        result = prune(tmp_path, max_bytes=0)
        assert result.freed_chunks == 1 and result.skipped_chunks == 1
        info = cache_info(tmp_path)
        assert info.in_use.chunks == 1 and info.running_jobs == ["enhance_job (clip.mp4), pid %d" % os.getpid()]
    assert live_leases(tmp_path) == [] and not list((tmp_path / LEASES).glob("*.lease"))
    [record] = owner_records(tmp_path)
    assert record.owner == "0123456789abcdef" and record.chunks == {f"frames/{'1' * 32}"}
    [owned] = cache_info(tmp_path).by_owner
    assert owned.label == "clip.mp4" and owned.usage.chunks == 1
    _put(ChunkStore(tmp_path), "frames", "3" * 32)
    assert prune(tmp_path, owner="0123", dry_run=True).freed_chunks == 1
    assert prune(tmp_path, owner="0123456789abcdef").freed_chunks == 1
    assert _keys(tmp_path) == {f"frames/{'3' * 32}"} and owner_records(tmp_path) == []


def test_the_lease_of_a_job_that_died_is_reaped_and_its_chunks_recorded(tmp_path):
    _put(ChunkStore(tmp_path), "frames", "1" * 32)
    folder = tmp_path / LEASES
    folder.mkdir()
    header = {"job": "reframe_job", "owner": "fedcba9876543210", "pid": 999999, "started": time.time()}
    (folder / "1-999999-dead.lease").write_text(json.dumps(header) + f"\nframes/{'1' * 32}\n")  # nobody holds it
    assert cache_info(tmp_path).in_use.chunks == 0  # not a running job
    prune(tmp_path, older_than=30 * DAY)
    assert not list(folder.glob("*.lease"))
    assert [r.owner for r in owner_records(tmp_path)] == ["fedcba9876543210"]


def test_enforce_budget_is_off_without_a_budget_and_never_waits_for_another_prune(tmp_path):
    store = ChunkStore(tmp_path)
    _put(store, "frames", "1" * 32)
    assert enforce_budget(tmp_path, CacheBudget(None, "off", "test")) is None
    with file_lock(tmp_path / ".prune.lock"):
        assert enforce_budget(tmp_path, CacheBudget(0, "0", "test")) is None
    assert enforce_budget(tmp_path, CacheBudget(0, "0", "test")).freed_chunks == 1


# ------------------------------------------------------------------------------------------------ a job while pruning


class SlowInvert(FrameOp):
    """A per-frame op slow enough for pruning to run beside it."""

    name = "slowinvert"
    version = "1"

    def key_parts(self, task):
        return {}

    def map_frame(self, frame: np.ndarray) -> np.ndarray:
        time.sleep(0.01)
        return 255 - frame


@dataclass
class Clip:
    path: str
    info: VideoInfo
    specs: list[ChunkSpec]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Clip:
    path = make_sample_clip(tmp_path_factory.mktemp("cache") / "clip.mp4", width=32, height=24, seconds=1.0, fps=12,
                            audio=False)
    info = probe_video(path)
    return Clip(str(path), info, plan_chunks(frame_timestamps(path, info), info.time_base, 0.25, []))


def _job(store: ChunkStore, clip: Clip) -> list[list[int]]:
    """Decode, invert, then read every output chunk (an encode would): the checksums of the frames."""
    frames = run_op(store, FramesOp(clip.path, sha256_file(clip.path), clip.info), clip.specs).records
    inverted = run_op(store, SlowInvert(), frames).records
    return [[int(f.sum()) for f in read_frames(r.path)] for r in inverted]


def test_pruning_with_a_tiny_budget_while_a_job_runs_breaks_nothing(tmp_path, clip):
    expected = _job(ChunkStore(tmp_path / "reference"), clip)
    root = tmp_path / "store"
    for i in range(3):  # chunks of no running job: the pruner takes these
        _put(ChunkStore(root), "upscale", f"{i}" * 32, age_days=5)
    _job(ChunkStore(root), clip)  # a first run's chunks: the pruner races the job for those it has not reused yet
    outcome: dict = {}

    def job():
        try:
            with RunLease(root, job="test", owner="0123456789abcdef") as lease:
                outcome["frames"] = _job(ChunkStore(root, journal=lease.journal), clip)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=job)
    thread.start()
    prunes = 0
    while thread.is_alive():
        prune(root, max_bytes=0)
        prunes += 1
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["frames"] == expected and prunes >= 1
    assert not any(c.stage == "upscale" for c in scan_store(root).chunks)
    assert prune(root, max_bytes=0).after_bytes == 0  # once the job ended, all of it may go
    # and the next run makes every chunk again
    assert _job(ChunkStore(root), clip) == expected


def test_without_a_lease_a_chunk_between_two_steps_could_be_pruned(tmp_path, clip):
    """Why jobs hold a lease: the store lock covers one lookup, not the step that reads the chunk later."""
    store = ChunkStore(tmp_path)
    frames = run_op(store, FramesOp(clip.path, sha256_file(clip.path), clip.info), clip.specs).records
    prune(tmp_path, max_bytes=0)
    assert not Path(frames[0].path).exists()
    assert run_op(store, FramesOp(clip.path, sha256_file(clip.path), clip.info), clip.specs).computed == len(frames)


PRUNER = """
import pathlib, sys
from stages.store.cache import prune
root, stop = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
count = 0
while not stop.exists():
    prune(root, max_bytes=0)
    count += 1
print(count)
"""


def test_pruning_from_another_process_while_a_job_runs_breaks_nothing(tmp_path, clip):
    expected = _job(ChunkStore(tmp_path / "reference"), clip)
    root = tmp_path / "store"
    _put(ChunkStore(root), "upscale", "0" * 32, age_days=5)
    stop = tmp_path / "stop"
    pruner = subprocess.Popen([sys.executable, "-c", PRUNER, str(root), str(stop)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.time() + 60
        while _keys(root) and time.time() < deadline:  # the pruner is at work
            time.sleep(0.05)
        assert not _keys(root)
        with RunLease(root, job="test", owner="0123456789abcdef") as lease:
            frames = _job(ChunkStore(root, journal=lease.journal), clip)
    finally:
        stop.touch()
        out, _ = pruner.communicate(timeout=60)
    assert pruner.returncode == 0 and int(out) > 1
    assert frames == expected
