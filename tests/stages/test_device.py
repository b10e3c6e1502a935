"""Device choice: CPU fallback with the right precision, and clear refusals."""

from __future__ import annotations

import pytest
import torch

from stages import device as device_mod
from stages.device import choose_device
from stages.errors import SettingsError


def test_cpu_choice_logs_reason(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    choice = choose_device("cpu")
    assert choice.device == "cpu" and choice.threads >= 1
    assert choice.precision in ("bf16", "fp32") and choice.reason


def test_bf16_follows_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert choose_device("cpu").precision == "bf16"
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"avx2"})
    assert choose_device("cpu").precision == "fp32"
    assert choose_device("cpu", "bf16").precision == "bf16"


def test_refusals(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SettingsError, match="no CUDA GPU"):
        choose_device("cuda")
    with pytest.raises(SettingsError, match="fp16 on the CPU"):
        choose_device("cpu", "fp16")
    with pytest.raises(SettingsError, match="unknown device"):
        choose_device("tpu")
    with pytest.raises(SettingsError, match="unknown precision"):
        choose_device("cpu", "int4")
