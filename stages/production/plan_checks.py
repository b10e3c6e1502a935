"""The small checks every production-plan format shares, so both formats speak with the same messages.

:mod:`stages.production.plan` (today's format) and :mod:`stages.production.plan_seed` (the carrier spec's format)
check keys, choices, numbers and paths with these; every message starts with ``plan: `` and names the place in
the plan (``scenes[1].transition``), e.g. ``plan: audio has an unknown key 'loudnes'; did you mean 'loudness'?``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stages.errors import SettingsError


def check_keys(value: Any, where: str, keys: Sequence[str]) -> dict[str, Any]:
    """``value`` as a dict when it is a JSON object holding only ``keys``.

    Raises:
        SettingsError: not an object, or an unknown key (with the closest known one, else the list of keys).
    """
    if not isinstance(value, Mapping):
        raise SettingsError(f"plan: {where} must be a JSON object ({{...}}), not {type(value).__name__}")
    for key in value:
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(keys)}"
            raise SettingsError(f"plan: {where} has an unknown key {key!r}; {hint}")
    return dict(value)


def is_int(value: Any) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_choice(value: Any, choices: Sequence[str], where: str) -> None:
    """Raises SettingsError when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise SettingsError(f"plan: {where} {value!r} is not one of {', '.join(choices)}")


def resolve_path(value: Any, where: str, base: Path) -> Path:
    """``value`` (a non-empty string) as an absolute path, relative ones taken from ``base``.

    Raises:
        SettingsError: not a non-empty string.
    """
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"plan: {where} must be a path (a non-empty string)")
    candidate = Path(value).expanduser()
    return (candidate if candidate.is_absolute() else base / candidate).resolve()
