"""Reading a run back from the Dagster event log: its per-chunk progress events and its error, as the CLI, the
inbox sensors, the page and the benchmarks all need them. No asset or definitions import (the sensors use it)."""

from __future__ import annotations

from typing import Any

from dagster import DagsterEventType, DagsterInstance

from stages.store.diskspace import DISK_FULL_ADVICE, mentions_disk_full


def progress_events(instance: DagsterInstance, run_id: str) -> list[tuple[dict[str, Any], float]]:
    """The run's per-chunk progress events (``stage``, ``chunk``, ``chunks``, ``frames``, ``reused``,
    ``seconds``; see orchestration/graphs/enhance.py) with the time each was logged, oldest first; empty while the run
    is not stored yet."""
    try:
        records = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_OBSERVATION)
    except Exception:  # noqa: BLE001 - the run may not be stored yet
        return []
    return [({k: v.value for k, v in entry.dagster_event.event_specific_data.asset_observation.metadata.items()},
             entry.timestamp) for entry in records]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), else its class name."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def error_line(error: Any, default: str = "unknown error") -> str:
    """The first line of the deepest error of this project's own in the cause chain of a Dagster
    ``SerializableErrorInfo`` (else of the deepest cause), without the class-name prefix Dagster adds
    ("stages.errors.SettingsError: upscale: ..." -> "upscale: ..."): our typed errors say what to do there, the
    library error they were raised from ("CUDA out of memory. Tried to allocate 2.00 GiB") does not.

    A full disk that no stage turned into a DiskFullError (a library's "No space left on device" anywhere in the
    chain) gives ``disk full (<that line>); free space and rerun: ...``, whatever error carried it."""
    full = _disk_full_line(error)
    if full is not None:
        return full
    causes = [error]
    while causes[-1].cause is not None:
        causes.append(causes[-1].cause)
    ours = [e for e in causes if _is_ours(e)]
    error = ours[-1] if ours else causes[-1]
    lines = (error.message or error.cls_name or default).strip().splitlines()
    message = lines[0] if lines else default
    head, _, rest = message.partition(": ")
    return rest if rest and head.rsplit(".", 1)[-1] == error.cls_name else message


def _disk_full_line(error: Any) -> str | None:
    """``disk full (...)`` when an error in the chain (causes and contexts) says the disk is full and none is our
    DiskFullError (which already says it all), else None."""
    messages = []
    while error is not None:
        if error.cls_name == "DiskFullError":
            return None
        messages.append(error.message or "")
        error = error.cause or getattr(error, "context", None)
    for message in reversed(messages):
        if mentions_disk_full(message):
            first = message.strip().splitlines()[0] if message.strip() else "no space left on device"
            return f"disk full ({first}); {DISK_FULL_ADVICE}"
    return None


def _is_ours(error: Any) -> bool:
    """Whether Dagster's message names a class of this project ("stages.errors.DeviceOutOfMemoryError: ...")."""
    head = (error.message or "").split(": ", 1)[0]
    return head.startswith(("stages.", "orchestration.")) and head.rsplit(".", 1)[-1] == error.cls_name
