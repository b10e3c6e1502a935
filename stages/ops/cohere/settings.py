"""What decides a coherent chunk's bytes: the method and its parameters (:class:`TemporalSettings`), and which
methods exist (see :mod:`stages.ops.cohere.temporal` for what each does)."""

from __future__ import annotations

from dataclasses import dataclass

from stages.errors import SettingsError
from stages.flow import DIS_PRESETS

__all__ = ["METHODS", "RUNNABLE_METHODS", "SEEDVR2_UNAVAILABLE", "TemporalSettings", "available_methods"]

METHODS = ("none", "ema", "flow", "auto", "seedvr2")
RUNNABLE_METHODS = ("none", "ema", "flow")

SEEDVR2_UNAVAILABLE = (
    "SeedVR2 is a 3B/7B-parameter diffusion video restorer: it needs a large GPU (tens of GB) and weights this "
    "project cannot obtain or run yet; use flow"
)


@dataclass(frozen=True)
class TemporalSettings:
    """What decides the bytes of a coherent chunk (with the input chunks and the carried state).

    The figures quoted below were measured on the cases of ``python -m benchmarks.coherence_real`` with
    realesr-general-x4v3 and realesr-animevideov3 (see docs/coherence.md).

    Args:
        method: one of :data:`METHODS`; ``auto`` (the default) must be resolved with
            :func:`stages.ops.cohere.temporal.choose_method` before filtering (it picks ``flow``).
        strength: ``flow``: largest weight of the warped previous output (0..1, exclusive). 0.6: 0.7 closes 3-7
            more points of the E_warp gap to lanczos but costs 0.1-0.2 dB PSNR on moving water and foliage.
        ema_alpha: ``ema``: weight of the previous output on static pixels (0..1, exclusive).
        motion_low, motion_high: ``ema``: source change (largest absolute difference over R, G, B, in [0,1]
            units) below which a pixel counts as static (gate 1) and above which as moving (gate 0); linear in
            between.
        source_error_low, source_error_high: ``flow``: soft threshold on the source residual
            ``|warp(lr_{t-1}) - lr_t|`` (largest over R, G, B) after a Gaussian blur of ``source_error_sigma``
            source pixels (without the blur, sampling differences of fine texture reject most textured pixels).
            0.02-0.06 closes 6-43 more points of the gap but leaves a fringe of up to 33 levels beside a square
            moving 3 source pixels a frame at x4, and costs 0.8 dB on moving water with realesr-animevideov3.
        misalignment_low, misalignment_high: ``flow``: soft threshold, in *output* pixels, on the residual
            divided by the source's local gradient (how far the flow is off, for a residual on an edge or
            texture). A pixel is trusted when either test passes: a strong edge the flow follows to within a few
            tenths of an output pixel leaves a residual the absolute test alone rejects, while faint texture the
            flow does not follow is caught by the absolute test. In output pixels, so that at x4 a high-contrast
            moving edge is not blended with a copy of itself displaced by a whole output pixel (a fringe).
        output_error_low, output_error_high: ``flow``: soft threshold on the signed difference between the
            (clamped) warped previous output and ``hr_t``, averaged by a Gaussian of ``output_error_sigma``
            source pixels, largest absolute value over R, G, B: a change of structure only the model made (the
            source did not change there), which must show at once rather than fade in.
        history_clamp: ``flow``: the warped previous output is clipped, per channel, to the mean plus or minus
            ``history_clamp`` standard deviations of ``hr_t``'s 3x3 neighbourhood before blending (variance
            clipping, as temporal anti-aliasing does): whatever the masks miss can only pull a pixel towards
            values present around it in the current frame, never paint an old edge or colour (no ghost). 0.5:
            1.0 costs 0.15-0.2 dB more on moving water and 0.2 dB on the real car clip.
        flow_preset: DIS preset (see :data:`stages.flow.DIS_PRESETS`).
    """

    method: str = "auto"
    strength: float = 0.6
    ema_alpha: float = 0.5
    motion_low: float = 0.01
    motion_high: float = 0.04
    source_error_low: float = 0.01
    source_error_high: float = 0.03
    misalignment_low: float = 0.4
    misalignment_high: float = 0.8
    output_error_low: float = 0.03
    output_error_high: float = 0.08
    output_error_sigma: float = 1.0
    source_error_sigma: float = 0.7
    history_clamp: float = 0.5
    flow_preset: str = "medium"

    def validate(self) -> None:
        """Raises SettingsError for an unknown or unavailable method or impossible parameters."""
        if self.method == "seedvr2":
            raise SettingsError(f"temporal: seedvr2 is not available: {SEEDVR2_UNAVAILABLE}")
        if self.method not in METHODS:
            raise SettingsError(
                f"temporal: unknown method {self.method!r}; use one of {', '.join(m for m in METHODS if m != 'seedvr2')}"
            )
        if not 0.0 <= self.strength < 1.0:
            raise SettingsError(f"temporal: strength {self.strength} must be in [0, 1); use 0.6")
        if not 0.0 <= self.ema_alpha < 1.0:
            raise SettingsError(f"temporal: ema_alpha {self.ema_alpha} must be in [0, 1); use 0.5")
        for name in ("motion", "source_error", "misalignment", "output_error"):
            low, high = getattr(self, f"{name}_low"), getattr(self, f"{name}_high")
            if not 0.0 <= low < high:
                raise SettingsError(f"temporal: {name}_low {low} must be >= 0 and below {name}_high {high}")
        for name, default in (("output_error_sigma", 1.0), ("source_error_sigma", 0.7)):
            if getattr(self, name) < 0:
                raise SettingsError(f"temporal: {name} {getattr(self, name)} is negative; use {default}")
        if not self.history_clamp > 0:
            raise SettingsError(f"temporal: history_clamp {self.history_clamp} must be positive; use 0.5")
        if self.flow_preset not in DIS_PRESETS:
            raise SettingsError(
                f"temporal: unknown flow preset {self.flow_preset!r}; use one of {', '.join(DIS_PRESETS)}"
            )


def available_methods() -> dict[str, str | None]:
    """Every method with ``None`` when it can run here, else the reason it cannot (for disabled UI choices)."""
    return {method: (SEEDVR2_UNAVAILABLE if method == "seedvr2" else None) for method in METHODS}
