"""RIFE IFNet v4.x: official key layout, detection, strict loading, padding and the frame interpolator.

The networks here are randomly initialised (seeded) with the official channel sizes, so key names and
shapes are those of the real checkpoints; the frames are tiny. The official weights cannot be downloaded on
the build machines: the layout is checked against figures published with the official files instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from stages.errors import InputError, ModelError, SettingsError, WeightsUnavailableError
from stages.models.catalog import (
    CATALOG,
    TASK_FRAME_INTERPOLATION,
    ModelEntry,
    ModelFile,
)
from stages.models.rife import (
    ARCHITECTURES,
    VERSIONS,
    IFNet,
    RifeInterpolator,
    RifeModel,
    detect_rife_version,
    get_spec,
    load_rife,
    pad_multiple,
    prepare_state_dict,
)
from stages.models.store import ModelStore

TIMES = [i / 8 for i in range(1, 8)]  # 0.125 .. 0.875


def random_state(version: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded random state dict of ``version`` with official key names; ``beta`` s perturbed away from 1."""
    torch.manual_seed(seed)
    state = IFNet(get_spec(version)).state_dict()
    return {key: (value + 0.05 * torch.randn_like(value)) if key.endswith(".beta") else value
            for key, value in state.items()}


def official_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` the way an official flownet.pkl holds it: ``module.`` prefix plus training-only modules."""
    out = {f"module.{key}": value for key, value in state.items()}
    out["module.teacher.conv0.0.0.weight"] = torch.zeros(32, 31, 3, 3)
    out["module.caltime.0.weight"] = torch.zeros(32, 17, 3, 3)
    return out


@pytest.fixture(scope="module")
def rife46() -> RifeModel:
    return load_rife(random_state("4.6", seed=1))


@pytest.fixture(scope="module")
def rife425() -> RifeModel:
    return load_rife(random_state("4.25", seed=2))


@pytest.fixture(scope="module")
def frames() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    def make(height: int, width: int, dtype: type = np.uint8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        top = np.iinfo(dtype).max
        a = rng.integers(0, top, (height, width, 3), dtype=dtype, endpoint=True)
        b = np.roll(a, (2, 3), axis=(0, 1))  # the same picture moved a little
        return a, b

    return make


# ----------------------------------------------------------------------------- the official layout


def test_v425_layout_matches_published_figures() -> None:
    # hzwer/Practical-RIFE 4.25 flownet.pkl: 198 tensors (MX-Player-Max, packages/postprocess: "rife_v4.25.mxai ...
    # RIFEv4.25.zip::train_log/flownet.pkl, 198 tensors"), of which the training-only `teacher` IFBlock (30) and
    # `caltime` convs (10) are never built at inference (commented out in the official IFNet_HDv3.py).
    state = IFNet(get_spec("4.25")).state_dict()
    assert len(state) == 198 - 30 - 10
    # block0.conv0.0.0.weight [96, 15, 3, 3] and block4.lastconv.0.bias [52]: the RIFE425 shapes in TNTwise's
    # REAL-Video-Enhancer arch detection and in MX-Player-Max's tests of the official file.
    assert tuple(state["block0.conv0.0.0.weight"].shape) == (96, 15, 3, 3)
    assert tuple(state["block4.lastconv.0.bias"].shape) == (52,)
    # Head of vs-rife's IFNet_HDv3_v4_25.py: Conv2d(3, 16, 3, 2, 1) ... ConvTranspose2d(16, 4, 4, 2, 1).
    assert tuple(state["encode.cnn0.weight"].shape) == (16, 3, 3, 3)
    assert tuple(state["encode.cnn3.weight"].shape) == (16, 4, 4, 4)
    assert tuple(state["block0.convblock.7.beta"].shape) == (1, 192, 1, 1)
    # Key order of a published 4.x key list (module.block0.conv0.0.0.weight, ..., convblock.0.beta, .conv.weight).
    assert [key for key in state if key.startswith("block0.")][:6] == [
        "block0.conv0.0.0.weight", "block0.conv0.0.0.bias", "block0.conv0.1.0.weight", "block0.conv0.1.0.bias",
        "block0.convblock.0.beta", "block0.convblock.0.conv.weight"]


def test_other_versions_match_published_shapes() -> None:
    # RVE (TNTwise) arch detection: RIFE425_heavy block0.conv0.0.0.weight [96, 39, 3, 3] (the 4.26.heavy file,
    # encode_channel 16); RIFE421 block0.conv0.1.0.bias [256]; RIFE422lite [192]; RIFE420 [384] is not supported.
    assert tuple(IFNet(get_spec("4.26.heavy")).state_dict()["block0.conv0.0.0.weight"].shape) == (96, 39, 3, 3)
    assert tuple(IFNet(get_spec("4.21")).state_dict()["block0.conv0.1.0.bias"].shape) == (256,)
    assert tuple(IFNet(get_spec("4.22.lite")).state_dict()["block0.conv0.1.0.bias"].shape) == (192,)
    v46 = IFNet(get_spec("4.6")).state_dict()  # vs-rife IFNet_HDv3_v4_6.py: IFBlock(7, c=192) ... no Head
    assert len(v46) == 4 * 30 and not any(key.startswith("encode.") for key in v46)
    assert tuple(v46["block0.conv0.0.0.weight"].shape) == (96, 7, 3, 3)
    assert tuple(v46["block3.lastconv.0.weight"].shape) == (64, 24, 4, 4)


@pytest.mark.parametrize(("version", "file_size", "extra_tensors", "extra_values"), [
    ("4.6", 21273159, 0, 0),
    # teacher = IFBlock(8+4+8+3+8, c=64) with a 52-channel lastconv, caltime = 5 convs (17-32-64-64-64-1).
    ("4.25", 24636301, 40, 376692 + 97857),
])
def test_parameter_count_fits_the_official_file_size(version: str, file_size: int, extra_tensors: int,
                                                     extra_values: int) -> None:
    # flownet.pkl sizes from ../shared/models/CATALOG-FACTS.md. A torch zip archive spends a few hundred bytes per
    # tensor on its record and alignment; anything else (a missing or extra block) would be megabytes off.
    state = IFNet(get_spec(version)).state_dict()
    payload = 4 * (sum(value.numel() for value in state.values()) + extra_values)
    per_tensor = (file_size - payload) / (len(state) + extra_tensors)
    assert 300 < per_tensor < 500


# ----------------------------------------------------------------------------- detection and loading


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_every_version_is_detected_as_its_architecture(version: str) -> None:
    spec = get_spec(version)
    torch.manual_seed(0)
    state = IFNet(spec).state_dict()
    assert detect_rife_version(state) == spec.name
    assert detect_rife_version(official_layout(state)) == spec.name
    assert version in spec.versions


def test_detection_tells_the_generations_apart() -> None:
    v46, v425 = random_state("4.6"), random_state("4.25")
    assert detect_rife_version(v46) == "4.6"
    assert detect_rife_version(v425) == "4.25"
    assert detect_rife_version(random_state("4.26.heavy")) == "4.26.heavy"
    # 4.25 and 4.26 are the same network: the version is named by the caller (the catalog's variant).
    assert load_rife(v425, version="4.26").version == "4.26"
    assert load_rife(v425).version == "4.25"
    with pytest.raises(ModelError, match=r"holds a RIFE 4\.6 network, not 4\.25"):
        load_rife(v46, version="4.25")
    with pytest.raises(SettingsError, match="not supported"):
        load_rife(v46, version="4.99")


def test_a_non_rife_state_dict_is_refused() -> None:
    conv = torch.nn.Conv2d(3, 8, 3).state_dict()
    with pytest.raises(ModelError, match=r"not a RIFE IFNet state dict .*found 2 tensors: weight, bias"):
        detect_rife_version(conv)
    with pytest.raises(ModelError, match="not a RIFE"):
        load_rife(conv)
    sequential_head = random_state("4.6") | {"encode.0.weight": torch.zeros(16, 3, 3, 3)}
    with pytest.raises(ModelError, match="Sequential encode Head"):
        detect_rife_version(sequential_head)
    odd = random_state("4.6") | {"block0.conv0.1.0.weight": torch.zeros(100, 96, 3, 3)}
    with pytest.raises(ModelError, match="matches no supported version"):
        detect_rife_version(odd)
    with pytest.raises(ModelError, match="not a tensor"):
        prepare_state_dict({"module.block0.conv0.0.0.weight": "text"})


def test_strict_loading_lists_missing_unexpected_and_misshapen_keys() -> None:
    state = random_state("4.6")
    missing = {key: value for key, value in state.items() if key != "block2.convblock.3.beta"}
    with pytest.raises(ModelError, match=r"missing: block2\.convblock\.3\.beta \(1\)"):
        load_rife(missing)
    with pytest.raises(ModelError, match=r"unexpected: block1\.extra\.weight \(1\)"):
        load_rife(state | {"block1.extra.weight": torch.zeros(1)})
    with pytest.raises(ModelError, match=r"wrong shape: block3\.convblock\.0\.conv\.bias \(3,\)"):
        load_rife(state | {"block3.convblock.0.conv.bias": torch.zeros(3)})


def test_official_pickle_with_module_prefix_loads_strictly_and_gives_the_same_frames(tmp_path: Path) -> None:
    state = random_state("4.25", seed=3)
    reference = load_rife(state)
    path = tmp_path / "flownet.pkl"
    torch.save(official_layout(state), path)
    loaded = load_rife(path)
    assert loaded.version == "4.25" and loaded.spec.name == "4.25" and loaded.architecture == "RIFE 4.25"
    for key, value in loaded.net.state_dict().items():
        assert torch.equal(value, state[key]), key
    torch.manual_seed(4)
    img0, img1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.inference_mode():
        assert torch.equal(loaded(img0, img1, 0.5), reference(img0, img1, 0.5))
    save_file(state, str(tmp_path / "flownet.safetensors"))
    assert load_rife(tmp_path / "flownet.safetensors", version="4.26").version == "4.26"
    torch.save({"state_dict": official_layout(state)}, tmp_path / "wrapped.pth")
    assert load_rife(tmp_path / "wrapped.pth").spec.name == "4.25"


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        load_rife(tmp_path / "missing.pkl")
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(ModelError, match="cannot read"):
        load_rife(garbage)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ModelError, match="not a state dict"):
        load_rife(tensor)


# ----------------------------------------------------------------------------- padding and forward


def test_padding_multiples_follow_the_vs_rife_rule() -> None:
    expected = {
        ("4.6", 1.0): 32, ("4.6", 0.5): 64, ("4.6", 0.25): 128, ("4.6", 2.0): 32, ("4.22", 4.0): 32,
        ("4.25", 1.0): 64, ("4.25", 0.5): 128, ("4.25", 2.0): 64, ("4.26", 0.25): 256,
        ("4.25.lite", 1.0): 128, ("4.25.lite", 0.5): 256, ("4.26.heavy", 1.0): 64,
    }
    for (version, scale), multiple in expected.items():
        assert pad_multiple(version, scale) == multiple, (version, scale)
    assert pad_multiple("v4.25") == pad_multiple("rife-4.25") == 64
    with pytest.raises(SettingsError, match="scale 0.3 is not supported"):
        pad_multiple("4.25", 0.3)
    with pytest.raises(SettingsError, match="version '5.0' is not supported"):
        pad_multiple("5.0")


def test_forward_refuses_unpadded_frames(rife425: RifeModel) -> None:
    with pytest.raises(SettingsError, match="not a multiple of 64.*pad right and bottom to 128x64"):
        rife425(torch.rand(1, 3, 48, 96), torch.rand(1, 3, 48, 96), 0.5)
    with pytest.raises(SettingsError, match="one size"):
        rife425(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 128), 0.5)


def test_tensor_timesteps_per_batch_item_match_single_calls(rife425: RifeModel) -> None:
    torch.manual_seed(5)
    img0, img1 = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    t = torch.tensor([0.25, 0.75]).view(2, 1, 1, 1)
    with torch.inference_mode():
        batch = rife425(img0, img1, t)
        singles = [rife425(img0[i:i + 1], img1[i:i + 1], float(t[i])) for i in range(2)]
        broadcast = rife425(img0[:1], img1[:1], t)  # one pair, two timesteps
    assert batch.shape == (2, 3, 64, 64) and 0.0 <= float(batch.min()) <= float(batch.max()) <= 1.0
    for i in range(2):
        torch.testing.assert_close(batch[i:i + 1], singles[i], atol=1e-5, rtol=0)
    torch.testing.assert_close(broadcast[0:1], singles[0], atol=1e-5, rtol=0)
    assert not torch.equal(batch[0], batch[1])


# ----------------------------------------------------------------------------- the interpolator


@pytest.mark.parametrize(("height", "width"), [(48, 64), (45, 67)])
def test_interpolator_shapes_padding_and_determinism(rife46: RifeModel, rife425: RifeModel, frames, height: int,
                                                     width: int) -> None:
    a, b = frames(height, width)
    for model, times in ((rife46, TIMES), (rife425, TIMES[1::2])):
        interpolator = RifeInterpolator(model)
        assert interpolator.multiple == model.pad_multiple(1.0) and interpolator.version == model.version
        assert interpolator.name == "rife" and interpolator.key.startswith(f"rife:{model.version}:weights=")
        out = interpolator.interpolate(a, b, times)
        assert len(out) == len(times)
        assert all(frame.shape == a.shape and frame.dtype == np.uint8 for frame in out)
        again = interpolator.interpolate(a, b, times)
        assert all(np.array_equal(x, y) for x, y in zip(out, again))
        assert len({frame.tobytes() for frame in out}) > 1  # the timestep matters


def test_interpolator_batches_and_orders_timesteps(rife46: RifeModel, frames) -> None:
    a, b = frames(45, 67, seed=1)
    times = [0.2, 0.5, 0.8]
    whole = RifeInterpolator(rife46).interpolate(a, b, times)
    one_by_one = RifeInterpolator(rife46, batch_size=1).interpolate(a, b, times[::-1])[::-1]
    for x, y in zip(whole, one_by_one):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1  # batched convolutions may round differently


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_interpolator_flow_scales_run(rife425: RifeModel, frames, scale: float) -> None:
    a, b = frames(45, 67, seed=2)
    interpolator = RifeInterpolator(rife425, scale=scale)
    assert interpolator.multiple == (128 if scale == 0.5 else 64)
    out = interpolator.interpolate(a, b, [0.5])
    assert out[0].shape == a.shape and out[0].dtype == np.uint8


def test_interpolator_uint16_and_bf16(rife46: RifeModel, frames) -> None:
    a, b = frames(45, 67, dtype=np.uint16, seed=3)
    out = RifeInterpolator(rife46).interpolate(a, b, [0.25, 0.5])
    assert [frame.dtype for frame in out] == [np.uint16, np.uint16] and out[0].shape == a.shape
    assert int(max(frame.max() for frame in out)) > 255  # kept in the 16-bit range
    half = RifeInterpolator(rife46, precision="bf16")
    assert next(half.net.parameters()).dtype == torch.bfloat16
    assert half.key != RifeInterpolator(rife46).key and half.weights_digest == RifeInterpolator(rife46).weights_digest
    assert next(rife46.net.parameters()).dtype == torch.float32  # the caller's model is left alone
    low = half.interpolate(a, b, [0.5])
    assert low[0].dtype == np.uint16 and low[0].shape == a.shape


def test_interpolator_follows_the_project_protocol(rife46: RifeModel, rife425: RifeModel) -> None:
    interpolate = pytest.importorskip("stages.ops.interpolate.interpolators")
    assert isinstance(RifeInterpolator(rife46), interpolate.Interpolator)
    other = load_rife(random_state("4.6", seed=9))
    assert RifeInterpolator(other).key != RifeInterpolator(rife46).key  # the weights are part of the key
    assert RifeInterpolator(rife425, scale=0.5).key != RifeInterpolator(rife425).key


def test_interpolator_refuses_bad_input(rife46: RifeModel, frames) -> None:
    a, b = frames(48, 64)
    interpolator = RifeInterpolator(rife46)
    assert interpolator.interpolate(a, b, []) == []
    for times in ([0.0], [1.0], [0.5, 1.5], [float("nan")]):
        with pytest.raises(SettingsError, match="strictly between 0 and 1"):
            interpolator.interpolate(a, b, times)
    with pytest.raises(InputError, match="one shape"):
        interpolator.interpolate(a, b[:-1], [0.5])
    with pytest.raises(InputError, match="uint8 or uint16"):
        interpolator.interpolate(a.astype(np.float32), b.astype(np.float32), [0.5])
    with pytest.raises(SettingsError, match="precision 'fp64'"):
        RifeInterpolator(rife46, precision="fp64")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="scale 3 is not supported"):
        RifeInterpolator(rife46, scale=3.0)


# ----------------------------------------------------------------------------- catalog and store


def test_catalog_entries_carry_version_and_padding() -> None:
    entries = [entry for entry in CATALOG.values() if entry.task == TASK_FRAME_INTERPOLATION]
    assert {"rife-4.6", "rife-4.25", "rife-4.26"} <= {entry.id for entry in entries}
    for entry in entries:
        assert entry.variant is not None and entry.file is not None and entry.file.urls
        assert pad_multiple(entry.variant, 1.0) == entry.size_multiple
        assert entry.variant in get_spec(entry.variant).versions
    assert get_spec(CATALOG["rife-4.25"].variant or "") is get_spec(CATALOG["rife-4.26"].variant or "")
    assert set(ARCHITECTURES) >= {"4.6", "4.25"}


def _rife_entry(model_id: str, filename: str, sha256: str | None, urls: tuple[str, ...] = ()) -> ModelEntry:
    return ModelEntry(id=model_id, task=TASK_FRAME_INTERPOLATION, architecture="RIFE", scale=1, family=model_id,
                      file=ModelFile(filename, urls, None, sha256), license="MIT", description="test",
                      tags=("fast",), variant="4.6", size_multiple=32)


def test_store_verifies_rife_files_with_the_rife_loader(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    good = models / "good.pkl"
    torch.save(official_layout(random_state("4.6")), good)
    bad = models / "bad.pkl"
    torch.save(official_layout(random_state("4.25")), bad)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    catalog = {"rife-pinned": _rife_entry("rife-pinned", "good.pkl", digest),
               "rife-unpinned": _rife_entry("rife-unpinned", "good.pkl", None),
               "rife-wrong": _rife_entry("rife-wrong", "bad.pkl", None)}
    store = ModelStore(cache_dir=tmp_path / "cache", models_dir=models, allow_download=False, catalog=catalog)
    [pinned] = store.verify("rife-pinned")
    assert pinned.ok and pinned.detail == "size and sha256 match the catalog; loads as RIFE 4.6"
    [unpinned] = store.verify("rife-unpinned")
    assert unpinned.ok and "loads as RIFE 4.6" in unpinned.detail
    [wrong] = store.verify("rife-wrong")
    assert not wrong.ok and "holds a RIFE 4.25 network, not 4.6" in wrong.detail
    assert store.resolve("rife-pinned").path == good
    with pytest.raises(ModelError, match="frame-interpolation model .*use the interpolation loader"):
        store.load("rife-pinned")
    assert load_rife(store.resolve("rife-pinned").path, version=catalog["rife-pinned"].variant).version == "4.6"


def test_store_download_of_an_unpinned_rife_file_is_load_checked(tmp_path: Path, http_server) -> None:
    payload = tmp_path / "payload.pkl"
    torch.save(official_layout(random_state("4.6")), payload)
    http_server.files["flownet_v4.6.pkl"] = payload.read_bytes()
    http_server.files["other.pkl"] = b"not a model"
    catalog = {"rife-dl": _rife_entry("rife-dl", "flownet_v4.6.pkl", None, (http_server.url("flownet_v4.6.pkl"),)),
               "rife-junk": _rife_entry("rife-junk", "other.pkl", None, (http_server.url("other.pkl"),))}
    store = ModelStore(cache_dir=tmp_path / "cache", progress=False, catalog=catalog)
    resolved = store.resolve("rife-dl")
    assert resolved.source == "download" and resolved.path.read_bytes() == payload.read_bytes()
    assert resolved.path.with_name(resolved.path.name + ".sha256").is_file()  # recorded after the load check
    with pytest.raises(ModelError, match="not a usable model"):
        store.resolve("rife-junk")
