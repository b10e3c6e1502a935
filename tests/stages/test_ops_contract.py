"""The chunk-op contract, run on every registered op over a tiny clip: output frame count and size as declared,
a rerun reuses every chunk, a changed parameter changes the key, a killed write leaves no chunk; and shots make a
stateful op's chunks independent of the chunk before a cut."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import spandrel

import stages.ops.builtin  # noqa: F401 - registers the built-in ops
from stages.device import DeviceChoice, choose_device
from stages.errors import ChunkError
from stages.media.chunking import ChunkSpec, plan_chunks
from stages.media.chunkio import count_frames, first_frame, read_frames
from stages.media.probe import VideoInfo, frame_timestamps, probe_video
from stages.ops.cohere.op import CohereOp
from stages.ops.cohere.temporal import TemporalSettings
from stages.ops.contract import ChunkOp, ChunkTask, FrameOp
from stages.ops.driver import run_op
from stages.ops.frames import FramesOp
from stages.ops.registry import get_op, register_op, registered, registered_ops
from stages.quality.samples import make_sample_clip
from stages.store.chunk_store import ChunkStore
from stages.store.fsutil import sha256_file

CUT = 9  # the clip's second shot starts at this frame


class Invert(FrameOp):
    """The trivial per-frame op of the issue: one module's worth of code."""

    name = "invert"
    version = "1"

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = strength

    def key_parts(self, task):
        return {"strength": self.strength}

    def map_frame(self, frame: np.ndarray) -> np.ndarray:
        top = np.iinfo(frame.dtype).max
        return (frame + (top - 2 * frame.astype(np.int64)) * self.strength).round().astype(frame.dtype)

    @classmethod
    def examples(cls, clip):
        return cls(1.0), cls(0.5)


@dataclass
class ExampleClip:
    path: str
    sha256: str
    info: VideoInfo
    specs: list[ChunkSpec]
    records: list
    cuts: list[int]
    device: DeviceChoice

    @staticmethod
    def tiny_model(scale: int = 2, seed: int = 0):
        import torch
        from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

        torch.manual_seed(seed)
        return spandrel.ModelLoader().load_from_state_dict(SRVGGNetCompact(num_feat=4, num_conv=1, upscale=scale)
                                                           .state_dict())


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> ExampleClip:
    folder = tmp_path_factory.mktemp("ops")
    path = make_sample_clip(folder / "clip.mp4", width=48, height=32, seconds=1.5, fps=12, audio=False)
    info = probe_video(path)
    specs = plan_chunks(frame_timestamps(path, info), info.time_base, 0.25, [CUT])
    store = ChunkStore(folder / "source-chunks")
    frames = FramesOp(str(path), sha256_file(path), info)
    records = list(run_op(store, frames, specs).records)
    return ExampleClip(str(path), sha256_file(path), info, specs, records, [CUT], choose_device("cpu", "fp32"))


def _inputs(op: ChunkOp, clip: ExampleClip):
    return type(op).example_inputs(clip)


def _ops():
    with registered(Invert):
        return sorted(registered_ops().items())


@pytest.mark.parametrize("name,op_class", _ops(), ids=[name for name, _ in _ops()])
def test_every_op_keeps_the_contract(name, op_class, clip, tmp_path):
    first, changed = op_class.examples(clip)
    inputs = _inputs(first, clip)
    store = ChunkStore(tmp_path / "chunks")

    run = run_op(store, first, inputs)
    assert run.records and run.computed == len(run.records) and run.reused == 0
    for record in run.records:
        assert Path(record.path).parent == store.root / name  # the store folder is the op's name
        assert count_frames(record.path) == record.frame_count == len(record.pts)
        assert first_frame(record.path).shape == (record.height, record.width, 3)
    declared_inputs = tuple(inputs)
    kept = [i for i in range(len(inputs)) if first.wants(ChunkTask(i, declared_inputs))]
    for position, record in zip(kept, run.records, strict=True):
        shape = first.expect(ChunkTask(position, declared_inputs))
        for declared, made in ((shape.frames, record.frame_count), (shape.width, record.width),
                               (shape.height, record.height)):
            assert declared is None or declared == made

    again, _ = op_class.examples(clip)
    rerun = run_op(store, again, inputs)
    assert rerun.computed == 0 and rerun.reused == len(run.records)
    assert [r.key for r in rerun.records] == [r.key for r in run.records]

    other = run_op(ChunkStore(tmp_path / "other"), changed, inputs)
    assert not {r.key for r in other.records} & {r.key for r in run.records}, "a changed parameter keeps a key"


@pytest.mark.parametrize("name,op_class", _ops(), ids=[name for name, _ in _ops()])
def test_a_killed_write_leaves_no_chunk(name, op_class, clip, tmp_path, monkeypatch):
    op, _ = op_class.examples(clip)
    produce = op.produce

    def killed(task, tmp):
        produce(task, tmp)  # the whole file is written, then the process "dies" before the commit
        raise KeyboardInterrupt

    monkeypatch.setattr(op, "produce", killed)
    store = ChunkStore(tmp_path / "chunks")
    with pytest.raises(KeyboardInterrupt):
        run_op(store, op, _inputs(op, clip))
    folder = store.root / name
    assert not [p for p in folder.iterdir() if p.suffix in (".nut", ".json") or ".tmp" in p.name]


def test_a_chunk_unlike_its_declaration_is_refused(clip, tmp_path):
    class Shrink(Invert):
        name = "shrink"

        def map_frame(self, frame):
            return frame[: frame.shape[0] // 2 * 2 // 2]

    with registered(Shrink):
        with pytest.raises(ChunkError, match="declared"):
            run_op(ChunkStore(tmp_path), Shrink(), clip.records)
    assert not list((tmp_path / "shrink").glob("*.json"))


def test_a_stateful_op_starts_fresh_at_a_shot(clip, tmp_path):
    records = clip.records
    starts = {r.index for r in records if r.start_frame == CUT}
    assert starts, "the plan cuts a chunk at the scene cut"
    shot = next(i for i, r in enumerate(records) if r.index in starts)
    op = CohereOp(TemporalSettings(method="ema", strength=0.5), None, clip.cuts)
    store = ChunkStore(tmp_path)
    base = run_op(store, op, records, shot_starts=starts)
    # change the first shot only (its first chunk made from another chunk): the second shot's keys stay
    changed = [replace(records[1], index=records[0].index, start_frame=0), *records[1:]]
    other = run_op(store, CohereOp(TemporalSettings(method="ema", strength=0.5), None, clip.cuts), changed,
                   shot_starts=starts)
    assert [r.key for r in other.records[shot:]] == [r.key for r in base.records[shot:]]
    assert other.records[shot - 1].key != base.records[shot - 1].key
    # without shots, the chunk after the cut depends on the one before it
    chained = run_op(store, CohereOp(TemporalSettings(method="ema", strength=0.5), None, clip.cuts), changed)
    assert chained.records[shot].key != base.records[shot].key


def test_starting_fresh_at_a_shot_keeps_the_bytes_where_the_filter_already_reset_at_the_cut(clip, tmp_path):
    """With source frames (no interpolation) the filter reset at the cut before shots existed: chunks made as
    independent shots hold the same frames as chunks chained across the cut, under other keys."""
    starts = {r.index for r in clip.records if r.start_frame == CUT}
    settings = TemporalSettings(method="ema", strength=0.5)
    shots = run_op(ChunkStore(tmp_path / "shots"), CohereOp(settings, clip.records, clip.cuts), clip.records,
                   shot_starts=starts)
    chained = run_op(ChunkStore(tmp_path / "chained"), CohereOp(settings, clip.records, clip.cuts), clip.records)
    assert [r.key for r in shots.records] != [r.key for r in chained.records]
    for a, b in zip(shots.records, chained.records, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(read_frames(a.path), read_frames(b.path), strict=True))


def test_registry_refuses_a_second_op_under_a_taken_name():
    class Impostor(Invert):
        name = "upscale"

    with pytest.raises(ValueError, match="taken"):
        register_op(Impostor)
    assert get_op("upscale").__module__ == "stages.ops.upscale.op"
    with pytest.raises(KeyError, match="registered"):
        get_op("no-such-op")
