"""How big the chunk store may grow: human sizes and durations, and the size budget with where it comes from.

The budget is, first found: ``VUP_CACHE_MAX_SIZE``; ``[cache] max_size`` in the workspace's ``vup.toml``; else the
default, the smaller of 50 GB and a quarter of the disk that holds the store (docs/cache.md says why). A value is a
size (``50G``, ``500MB``, ``1.5T``, ``40GiB``, plain bytes), a share of that disk (``20%``) or ``off`` (no budget).
Plain Python: no Dagster import.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser from PyPI (a dependency there)
    import tomli as tomllib  # type: ignore[no-redef]

from stages.errors import SettingsError
from stages.store.diskspace import human_bytes

BUDGET_ENV = "VUP_CACHE_MAX_SIZE"
CONFIG_SECTION, CONFIG_KEY = "cache", "max_size"
DEFAULT_MAX_BYTES = 50 * 10**9
DEFAULT_DISK_SHARE = 0.25
OFF_WORDS = frozenset({"off", "none", "unlimited", "no"})

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)\s*(s|sec|min|m|h|d|w)", re.IGNORECASE)


def parse_size(text: str, what: str = "size") -> int:
    """Bytes of a human size: ``50G``/``50GB`` (decimal, as disk tools show), ``40GiB`` (binary), ``500M``,
    ``12k``, plain bytes (``1000000``).

    Raises:
        SettingsError: not a size; the message shows the forms that are.
    """
    match = _SIZE.fullmatch(str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise SettingsError(f"cache: {what} {text!r} is not a size; write e.g. 50G, 500MB, 1.5T or 40GiB")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds of a human duration: ``30d``, ``12h``, ``90m`` / ``90min``, ``45s``, ``2w``, or several (``1d12h``).

    Raises:
        SettingsError: not a duration (a number needs a unit, except 0).
    """
    value = str(text).strip().lower()
    if re.fullmatch(r"0+(\.0*)?", value):
        return 0.0
    parts = _DURATION_PART.findall(value)
    if not parts or _DURATION_PART.sub("", value).strip():
        raise SettingsError(f"cache: {what} {text!r} is not a duration; write a number and a unit, e.g. 30d, "
                            "12h, 90m or 2w (s, m, h, d, w)")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """``3 days``, ``5 h``, ``12 min``, ``40 s``."""
    seconds = max(0.0, seconds)
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def disk_total_bytes(path: str | os.PathLike[str]) -> int:
    """Size of the disk that holds ``path`` (its nearest existing folder)."""
    here = Path(path)
    while not here.exists() and here != here.parent:
        here = here.parent
    return shutil.disk_usage(here).total


@dataclass(frozen=True)
class CacheBudget:
    """The store's size budget: ``max_bytes`` (None: no budget), the text it came from, and where it was set."""

    max_bytes: int | None
    text: str
    source: str

    def describe(self) -> str:
        """``50.0 GB (default: ...)``, ``off (VUP_CACHE_MAX_SIZE)``."""
        size = "off" if self.max_bytes is None else human_bytes(self.max_bytes)
        return f"{size} ({self.source})"


def parse_budget(text: str, store_root: str | os.PathLike[str], what: str = "the cache budget") -> int | None:
    """Bytes of a budget value: a size (see :func:`parse_size`), ``N%`` of the store's disk, or ``off`` (None).

    Raises:
        SettingsError: none of those.
    """
    value = str(text).strip()
    if value.lower() in OFF_WORDS:
        return None
    if value.endswith("%"):
        try:
            share = float(value[:-1])
        except ValueError:
            share = -1.0
        if not 0 < share <= 100:
            raise SettingsError(f"cache: {what} {text!r} is not a share of the disk; write e.g. 20% (above 0, at "
                                "most 100)")
        return int(disk_total_bytes(store_root) * share / 100)
    return parse_size(value, what)


def default_budget(store_root: str | os.PathLike[str]) -> CacheBudget:
    """The smaller of 50 GB and a quarter of the disk that holds the store."""
    quarter = int(disk_total_bytes(store_root) * DEFAULT_DISK_SHARE)
    if quarter < DEFAULT_MAX_BYTES:
        return CacheBudget(quarter, "25%", f"default: a quarter of the {human_bytes(quarter * 4)} disk")
    return CacheBudget(DEFAULT_MAX_BYTES, "50G", "default")


def resolve_budget(store_root: str | os.PathLike[str], config_file: str | os.PathLike[str] | None = None,
                   env: Mapping[str, str] | None = None) -> CacheBudget:
    """The budget in force: ``VUP_CACHE_MAX_SIZE``, else ``[cache] max_size`` of ``config_file`` (the workspace's
    vup.toml), else :func:`default_budget`.

    Raises:
        SettingsError: the variable or the file holds a value that is no budget, or the file is not TOML; the
            message names which and how to fix it.
    """
    env = os.environ if env is None else env
    if env.get(BUDGET_ENV, "").strip():
        text = env[BUDGET_ENV].strip()
        return CacheBudget(parse_budget(text, store_root, BUDGET_ENV), text, BUDGET_ENV)
    if config_file is not None and Path(config_file).is_file():
        try:
            config = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cache: {config_file} is not readable TOML ({exc}); fix it, e.g.\n"
                                f"[{CONFIG_SECTION}]\n{CONFIG_KEY} = \"50G\"") from None
        section = config.get(CONFIG_SECTION, {})
        value = section.get(CONFIG_KEY) if isinstance(section, dict) else None
        if value is not None:
            text = str(value).strip()
            where = f"[{CONFIG_SECTION}] {CONFIG_KEY} in {config_file}"
            return CacheBudget(parse_budget(text, store_root, where), text, where)
    return default_budget(store_root)
