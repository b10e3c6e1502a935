"""The content-addressed chunk store: atomic commits, validation, and redo of anything that does not check out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stages.media.chunkio import ChunkWriter, read_frames
from stages.store.chunk_store import ChunkContent, ChunkStore, content_key


def _producer(count: int = 3, fail: bool = False):
    def produce(tmp):
        with ChunkWriter(tmp, 16, 8, 8) as writer:
            for i in range(count):
                writer.write(np.full((8, 16, 3), i * 10, dtype=np.uint8))
        if fail:
            raise RuntimeError("disk full")
        return ChunkContent(count, tuple(range(0, count * 1000, 1000)), 16, 8, 8)

    return produce


def test_key_is_order_independent_and_sensitive():
    a = content_key("upscaled", {"model": "m", "scale": 4})
    assert a == content_key("upscaled", {"scale": 4, "model": "m"})
    assert a != content_key("upscaled", {"model": "m", "scale": 2})
    assert a != content_key("frames", {"model": "m", "scale": 4})
    assert len(a) == 32


def test_put_then_get(tmp_path):
    store = ChunkStore(tmp_path)
    record = store.put("frames", "k1", _producer(), index=2, start_frame=30, params={"x": 1})
    assert record.frame_count == 3 and record.end_frame == 33 and record.pts == (0, 1000, 2000)
    again = store.get("frames", "k1")
    assert again == record
    assert [f[0, 0, 0] for f in read_frames(again.path)] == [0, 10, 20]
    assert not [p for p in (tmp_path / "frames").iterdir() if ".tmp" in p.name]


def test_missing_is_none(tmp_path):
    assert ChunkStore(tmp_path).get("frames", "nope") is None


def test_failed_producer_commits_nothing(tmp_path):
    store = ChunkStore(tmp_path)
    with pytest.raises(RuntimeError, match="disk full"):
        store.put("frames", "k1", _producer(fail=True), index=0, start_frame=0)
    assert list((tmp_path / "frames").iterdir()) == []
    assert store.get("frames", "k1") is None


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete_media", "bad_manifest", "no_manifest"])
def test_damaged_chunks_are_discarded(tmp_path, damage):
    store = ChunkStore(tmp_path)
    record = store.put("frames", "k1", _producer(), index=0, start_frame=0)
    media, manifest = store.paths("frames", "k1")
    if damage == "flip_byte":
        data = bytearray(media.read_bytes())
        data[len(data) // 2] ^= 0xFF
        media.write_bytes(bytes(data))
    elif damage == "truncate":
        media.write_bytes(media.read_bytes()[: record.size_bytes // 2])
    elif damage == "delete_media":
        media.unlink()
    elif damage == "bad_manifest":
        manifest.write_text("{not json")
    elif damage == "no_manifest":
        manifest.unlink()
    assert store.get("frames", "k1") is None
    assert not media.exists() and not manifest.exists()
    # and it can be redone
    assert store.put("frames", "k1", _producer(), index=0, start_frame=0).frame_count == 3


def test_manifest_of_another_key_is_rejected(tmp_path):
    store = ChunkStore(tmp_path)
    store.put("frames", "k1", _producer(), index=0, start_frame=0)
    media, manifest = store.paths("frames", "k1")
    media2, manifest2 = store.paths("frames", "k2")
    media2.write_bytes(media.read_bytes())
    manifest2.write_text(manifest.read_text())
    assert store.get("frames", "k2") is None
    assert json.loads(manifest.read_text())["key"] == "k1"


def test_first_and_last_frame_of_a_chunk(tmp_path):
    import numpy as np

    from stages.errors import ChunkError
    from stages.media.chunkio import ChunkWriter, first_frame, last_frame

    frames = [np.full((6, 8, 3), value, np.uint8) for value in (10, 20, 30)]
    with ChunkWriter(tmp_path / "c.nut", 8, 6) as writer:
        for frame in frames:
            writer.write(frame)
    assert np.array_equal(first_frame(tmp_path / "c.nut"), frames[0])
    assert np.array_equal(last_frame(tmp_path / "c.nut"), frames[-1])
    with pytest.raises(ChunkError):
        first_frame(tmp_path / "missing.nut")


def test_get_or_put_makes_once_then_reuses_and_redoes_a_damaged_chunk(tmp_path):
    store = ChunkStore(tmp_path)
    calls = []

    def produce(tmp):
        calls.append(tmp)
        return _producer()(tmp)

    first, reused = store.get_or_put("frames", "k1", produce, index=1, start_frame=3, params={"x": 1})
    assert not reused and len(calls) == 1 and first.start_frame == 3 and first.params == {"x": 1}
    again, reused = store.get_or_put("frames", "k1", produce, index=1, start_frame=3)
    assert reused and again == first and len(calls) == 1
    media, _manifest = store.paths("frames", "k1")
    media.write_bytes(b"damaged")
    redone, reused = store.get_or_put("frames", "k1", produce, index=1, start_frame=3)
    assert not reused and len(calls) == 2 and redone.sha256 == first.sha256
    with pytest.raises(RuntimeError, match="disk full"):
        store.get_or_put("frames", "k2", _producer(fail=True), index=0, start_frame=0)
    assert store.get("frames", "k2") is None
    assert sorted(p.name for p in (tmp_path / "frames").iterdir() if ".tmp" in p.name) == []


def test_manifests_name_chunks_relative_to_the_store_so_a_store_mounted_elsewhere_reads_them(tmp_path):
    store = ChunkStore(tmp_path / "here")
    made = store.put("upscale", "a" * 32, _producer(), index=0, start_frame=0)
    assert json.loads((tmp_path / "here" / "upscale" / f"{'a' * 32}.json").read_text())["path"] == \
        f"upscale/{'a' * 32}.nut"
    (tmp_path / "here").rename(tmp_path / "there")
    moved = ChunkStore(tmp_path / "there").get("upscale", "a" * 32)
    assert moved is not None and moved.path == str(tmp_path / "there" / "upscale" / f"{'a' * 32}.nut")
    assert moved.sha256 == made.sha256 and len(list(read_frames(moved.path))) == 3


def test_a_manifest_written_before_relative_paths_is_still_read(tmp_path):
    store = ChunkStore(tmp_path / "store")
    store.put("frames", "b" * 32, _producer(), index=0, start_frame=0)
    manifest = tmp_path / "store" / "frames" / f"{'b' * 32}.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "path": str(tmp_path / "store" / data["path"])}))  # the old form
    record = store.get("frames", "b" * 32)
    assert record is not None and record.path == str(tmp_path / "store" / "frames" / f"{'b' * 32}.nut")
