"""Reading a run back from the Dagster event log: its per-chunk progress events and its error, as the CLI, the
inbox sensors, the page and the benchmarks all need them. No asset or definitions import (the sensors use it)."""

from __future__ import annotations

from typing import Any

from dagster import DagsterEventType, DagsterInstance


def progress_events(instance: DagsterInstance, run_id: str) -> list[tuple[dict[str, Any], float]]:
    """The run's per-chunk progress events (``stage``, ``chunk``, ``chunks``, ``frames``, ``reused``,
    ``seconds``; see orchestration/assets.py) with the time each was logged, oldest first; empty while the run
    is not stored yet."""
    try:
        records = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_OBSERVATION)
    except Exception:  # noqa: BLE001 - the run may not be stored yet
        return []
    return [({k: v.value for k, v in entry.dagster_event.event_specific_data.asset_observation.metadata.items()},
             entry.timestamp) for entry in records]


def error_line(error: Any, default: str = "unknown error") -> str:
    """The first line of the deepest cause of a Dagster ``SerializableErrorInfo``, without the class-name
    prefix Dagster adds ("stages.errors.SettingsError: upscale: ..." -> "upscale: ..."): our typed errors
    say what to do there."""
    while error.cause is not None:
        error = error.cause
    lines = (error.message or error.cls_name or default).strip().splitlines()
    message = lines[0] if lines else default
    head, _, rest = message.partition(": ")
    return rest if rest and head.rsplit(".", 1)[-1] == error.cls_name else message
