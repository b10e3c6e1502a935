"""Load RIFE IFNet checkpoints the spandrel way: read the state dict, detect the version from it, then load.

Official Practical-RIFE checkpoints are ``train_log/flownet.pkl``: a torch-pickled state dict saved from a
``DataParallel`` model, so every key starts with ``module.``. The v4.2x files also keep two training-only
modules, ``teacher`` (a distillation IFBlock) and ``caltime``, which the official inference code never builds
and loads past with ``strict=False``. This loader removes the prefix and those two modules, then loads every
other tensor strictly: a missing, unexpected or misshapen tensor is an error that lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from stages.errors import ModelError, WeightsUnavailableError
from stages.models.rife.arch import (
    ARCHITECTURES,
    VERSIONS,
    IFNet,
    IFNetSpec,
    get_spec,
    normalise_version,
)
from stages.models.safe_load import UnreadableWeightsError, load_tensors

__all__ = [
    "TRAINING_ONLY_MODULES",
    "RifeModel",
    "detect_rife_version",
    "load_rife",
    "pad_multiple",
    "prepare_state_dict",
    "read_state_dict",
    "supported_versions",
]

logger = logging.getLogger(__name__)

TRAINING_ONLY_MODULES: tuple[str, ...] = ("teacher", "caltime")
"""Top-level modules of official checkpoints that inference never uses (dropped before the strict load)."""

_PREFIX = "module."
_LISTED = 6


@dataclass(frozen=True, eq=False)
class RifeModel:
    """A loaded RIFE network on the CPU in eval mode, with the release name it was loaded as.

    Call it like the network: ``model(img0, img1, timestep, scale) -> (N, 3, H, W)`` (see :meth:`IFNet.forward`).
    """

    net: IFNet
    version: str

    @property
    def spec(self) -> IFNetSpec:
        """The architecture (block widths, Head, padding)."""
        return self.net.spec

    @property
    def architecture(self) -> str:
        """A readable name, e.g. ``"RIFE 4.26"``."""
        return f"RIFE {self.version}"

    @property
    def supports_half(self) -> bool:
        """Whether the network may run in float16 (the official code offers fp16)."""
        return True

    @property
    def supports_bfloat16(self) -> bool:
        """Whether the network may run in bfloat16."""
        return True

    def pad_multiple(self, scale: float = 1.0) -> int:
        """What H and W must be padded to (right/bottom) at flow ``scale``."""
        return self.net.pad_multiple(scale)

    def __call__(self, img0: Tensor, img1: Tensor, timestep: float | Tensor, scale: float = 1.0) -> Tensor:
        """``(N, 3, H, W)`` frames in [0, 1] -> the ``(N, 3, H, W)`` frame at ``timestep``."""
        return self.net(img0, img1, timestep, scale)


def pad_multiple(version: str, scale: float = 1.0) -> int:
    """What H and W are padded up to for ``version`` at flow ``scale``: ``max(m, int(m / scale))``.

    ``m`` is 32 up to v4.24, 64 for v4.25 / v4.26 (and their heavy variants), 128 for v4.25.lite (vs-rife's
    table). Raises SettingsError for an unknown version or a scale outside 0.25, 0.5, 1, 2, 4.
    """
    return get_spec(version).pad_multiple(scale)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read the tensors of a ``.pkl`` / ``.pth`` / ``.pt`` (torch pickle, tensors only) or ``.safetensors`` file.

    Raises WeightsUnavailableError when the file does not exist, ModelError when it cannot be read as a
    state dict; UnsafeWeightsError (a ModelError) for a pickle that names more than tensors: read with
    ``weights_only=True`` (:func:`stages.models.safe_load.load_tensors`), nothing in it runs.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"rife: {path} does not exist; pass the path of a flownet.pkl / .pth / "
                                      ".safetensors file")
    try:
        loaded: object = load_tensors(path, what="rife", any_suffix=True)
    except UnreadableWeightsError as exc:
        raise ModelError(f"rife: cannot read {path} as a state dict ({exc.detail}); pass an uncorrupted RIFE "
                         "flownet.pkl, .pth or .safetensors") from exc
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ModelError(f"rife: {path} holds a {type(loaded).__name__}, not a state dict; pass a RIFE flownet.pkl")
    return dict(loaded)


def prepare_state_dict(state_dict: Mapping[str, object]) -> dict[str, Tensor]:
    """The state dict with its ``module.`` prefixes removed and the training-only modules dropped.

    Raises ModelError when a value is not a tensor.
    """
    prepared: dict[str, Tensor] = {}
    dropped = 0
    for key, value in state_dict.items():
        name = str(key)
        name = name.removeprefix(_PREFIX)
        if name.split(".", 1)[0] in TRAINING_ONLY_MODULES:
            dropped += 1
            continue
        if not isinstance(value, Tensor):
            raise ModelError(f"rife: the state dict entry {key!r} is a {type(value).__name__}, not a tensor; "
                             "pass a RIFE flownet state dict")
        prepared[name] = value
    if dropped:
        logger.debug("rife: dropped %d tensors of the training-only modules %s", dropped,
                     "/".join(TRAINING_ONLY_MODULES))
    return prepared


def _shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    return tuple(state[key].shape)


def _describe(state: Mapping[str, Tensor]) -> str:
    keys = list(state)
    shown = ", ".join(keys[:_LISTED])
    return f"{len(keys)} tensors: {shown}{', ...' if len(keys) > _LISTED else ''}" if keys else "no tensors"


def detect_rife_version(state_dict: Mapping[str, object]) -> str:
    """The RIFE architecture of a state dict, from its key names and tensor shapes.

    Returns the canonical name of the architecture (a key of :data:`~stages.models.rife.arch.ARCHITECTURES`):
    releases with identical networks cannot be told apart by their weights, e.g. a v4.26 file is detected as
    ``"4.25"`` and a v4.18 file as ``"4.24"`` (same shapes, same forward, same padding). Prefixed
    (``module.``) and already stripped state dicts are both accepted.

    Raises ModelError saying what was found when it is not a RIFE IFNet flownet, or a RIFE network this
    project does not implement.
    """
    state = prepare_state_dict(state_dict)
    if "block0.conv0.0.0.weight" not in state or "block0.lastconv.0.weight" not in state:
        raise ModelError(f"rife: not a RIFE IFNet state dict (no block0.conv0.0.0.weight / block0.lastconv.0.weight;"
                         f" found {_describe(state)}); pass a Practical-RIFE flownet.pkl")
    count = 0
    while f"block{count}.conv0.1.0.weight" in state:
        count += 1
    try:
        widths = tuple(_shape(state, f"block{i}.conv0.1.0.weight")[0] for i in range(count))
        first_inputs = _shape(state, "block0.conv0.0.0.weight")[1]
        outputs = _shape(state, "block0.lastconv.0.weight")[1] // 4
        if "encode.cnn0.weight" in state:
            head = (_shape(state, "encode.cnn0.weight")[0], _shape(state, "encode.cnn3.weight")[1])
        elif any(key.startswith("encode.") for key in state):
            raise ModelError("rife: this RIFE network has a Sequential encode Head (encode.0.weight, as in v4.7 to "
                             "v4.12), which is not implemented; use v4.6 or v4.13 and later (4.25 recommended)")
        else:
            head = (0, 0)
    except (KeyError, IndexError) as exc:
        raise ModelError(f"rife: the RIFE state dict lacks {exc} or has an unexpected shape there; pass an "
                         "unmodified Practical-RIFE flownet.pkl") from exc
    for spec in ARCHITECTURES.values():
        if (spec.block_widths == widths and (spec.head_width, spec.encode_channels) == head
                and spec.first_block_inputs == first_inputs and spec.block_outputs == outputs):
            return spec.name
    supported = ", ".join(ARCHITECTURES)
    raise ModelError(f"rife: a RIFE IFNet with {count} blocks of widths {list(widths)}, encode Head {head}, "
                     f"{first_inputs} block0 inputs and {outputs} block outputs matches no supported version "
                     f"({supported}); use one of those releases")


def _check_keys(net: IFNet, state: Mapping[str, Tensor], where: str) -> None:
    expected = net.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshapen = [f"{key} {tuple(state[key].shape)} (expected {tuple(value.shape)})" for key, value in expected.items()
                 if key in state and state[key].shape != value.shape]
    problems = [f"{label}: {', '.join(items[:_LISTED])}{', ...' if len(items) > _LISTED else ''} ({len(items)})"
                for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen))
                if items]
    if problems:
        raise ModelError(f"rife: {where} does not match the RIFE {net.spec.name} network ({'; '.join(problems)}); "
                         "pass an unmodified official flownet.pkl of that version")


def load_rife(source: str | Path | Mapping[str, object], version: str | None = None) -> RifeModel:
    """Load a RIFE checkpoint (a path or a state dict) on the CPU in eval mode.

    ``version`` names the release (``"4.6"``, ``"4.25"``, ``"4.26"``...); when given it must have the
    architecture found in the weights, when None the detected architecture's name is used. The weights must
    then match that network exactly (after :func:`prepare_state_dict`).

    Raises WeightsUnavailableError for a missing file, SettingsError for an unknown ``version``, ModelError
    when the weights are not a supported RIFE network, are another version than ``version``, or do not match
    the network key for key.
    """
    where = str(source) if isinstance(source, (str, Path)) else "the state dict"
    raw = read_state_dict(source) if isinstance(source, (str, Path)) else source
    state = prepare_state_dict(raw)
    detected = detect_rife_version(state)
    if version is None:
        name = detected
    else:
        spec = get_spec(version)
        name = normalise_version(version)
        if spec.name != detected:
            raise ModelError(f"rife: {where} holds a RIFE {detected} network, not {version}; pass the weights of "
                             f"{version} or leave the version out to use the one found")
    net = IFNet(ARCHITECTURES[detected])
    _check_keys(net, state, where)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # dtype or layout problems _check_keys cannot see
        raise ModelError(f"rife: {where} does not load into RIFE {detected} ({' '.join(str(exc).split())[:300]}); "
                         "pass an unmodified official flownet.pkl") from exc
    net.eval().requires_grad_(False)
    logger.debug("rife: loaded %s as RIFE %s (architecture %s)", where, name, detected)
    return RifeModel(net, name)


def supported_versions() -> tuple[str, ...]:
    """Every release name :func:`load_rife` accepts as ``version``."""
    return tuple(VERSIONS)
