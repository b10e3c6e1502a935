"""Out of memory on the device: the back-off, and the message when even the floor does not fit.

Covered elsewhere: the upscaler halves the batch, then the tile, and fails at batch 1 / 64 px tiles
(tests/stages/test_upscale.py); the ncnn backend halves its tile down to 64 px (tests/stages/test_ncnn_backend.py).
Here: the floor's message reaches the user of a whole run, and RIFE (the other model that runs on the device)
backs off to one timestep per call, then says what to change. The temporal pass and the optical-flow
interpolator run on the CPU (OpenCV), not on the device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestration.launch.request import EnhanceRequest
from orchestration.launch.runner import run_enhance
from orchestration.resources.config import ChunkPlanConfig, EncodeConfig, UpscaleConfig
from stages.errors import DeviceOutOfMemoryError
from stages.models.rife import IFNet, RifeInterpolator, get_spec, load_rife
from stages.ops.upscale.engine import Upscaler


def test_upscale_out_of_memory_at_the_floor_tells_the_user_what_to_change(workspace, tiny_clip, tmp_path,
                                                                          monkeypatch):
    calls = []

    def no_memory(self, x):
        calls.append((x.shape[0], x.shape[2], x.shape[3]))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Upscaler, "_forward", no_memory)
    out = tmp_path / "never.mp4"
    outcome = run_enhance(workspace, EnhanceRequest(
        input=tiny_clip, output=out, chunk=ChunkPlanConfig(chunk_seconds=1.0), upscale=UpscaleConfig(batch=4, backend="torch"),
        encode=EncodeConfig(preset="veryfast"), device="cpu"))
    assert not outcome.success and not out.exists()
    assert outcome.error.startswith("upscale: out of memory on cpu even with batch 1 and 64 px tiles; ")
    assert "use --device cpu, or pick a smaller model" in outcome.error and "\n" not in outcome.error
    assert [batch for batch, _h, _w in calls] == [4, 2, 1]  # batch 4 -> 2 -> 1, then the floor (64 px frames)


class _OomAboveOneTimestep(torch.nn.Module):
    """Wraps a RIFE network: CUDA-style out-of-memory whenever a call carries more than ``limit`` timesteps."""

    def __init__(self, net: IFNet, limit: int) -> None:
        super().__init__()
        self.net, self.limit, self.sizes = net, limit, []

    def forward(self, img0, img1, timestep, scale):
        self.sizes.append(timestep.shape[0])
        if timestep.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return self.net(img0, img1, timestep, scale)


@pytest.fixture(scope="module")
def rife() -> object:
    torch.manual_seed(3)
    return load_rife(IFNet(get_spec("4.6")).state_dict())


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    return a, np.roll(a, 3, axis=1)


def test_rife_backs_off_to_fewer_timesteps_per_call(rife):
    a, b = _pair()
    times = [0.25, 0.5, 0.75, 0.125]
    expected = RifeInterpolator(rife, batch_size=1).interpolate(a, b, times)
    interpolator = RifeInterpolator(rife)  # all timesteps in one call
    wrapper = _OomAboveOneTimestep(interpolator.net, limit=1)
    interpolator.net = wrapper
    frames = interpolator.interpolate(a, b, times)
    assert wrapper.sizes == [4, 2, 1, 1, 1, 1]
    assert all(np.array_equal(x, y) for x, y in zip(frames, expected, strict=True))


def test_rife_out_of_memory_at_one_timestep_says_what_to_change(rife):
    a, b = _pair()
    interpolator = RifeInterpolator(rife)
    interpolator.net = _OomAboveOneTimestep(interpolator.net, limit=0)
    with pytest.raises(DeviceOutOfMemoryError, match=r"^interpolate: RIFE ran out of memory on cpu with 56x40 "
                                                     r"frames even one timestep at a time; use --interp-method flow"):
        interpolator.interpolate(a, b, [0.5, 0.25])
