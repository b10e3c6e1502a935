"""The inbox: drop a video in a folder and it is enhanced with no click.

The folder is ``<workspace>/inbox`` unless ``VUP_INBOX`` is set. The sensors start RUNNING (no click in the
UI), so once ``vup dev`` / the Dagster daemon runs, a dropped file is processed.

``inbox_sensor`` (every 5 s) looks at the files directly in the inbox (not in subfolders) whose suffix is one of
.mp4 .mov .mkv .avi .webm .m4v; hidden files and partial downloads (``.part``, ``.crdownload``, ``.tmp``, a
trailing ``~``) are ignored. A file counts as fully written once its size and modification time (and those of
its sidecar) are the same at two evaluations in a row; an empty file waits. Then:

* its sha256 is the run key, so the same content is processed once, even renamed or copied again: a later file
  with content already requested moves to ``done/`` next to ``NAME.duplicate.txt`` naming the earlier run;
* its settings (below) and the video itself are checked (``validate_request``) before anything runs: a bad
  setting or an unreadable video moves it at once to ``failed/`` next to ``NAME.error.txt`` (one line: why);
* otherwise it is registered as a ``videos`` partition (key = sha256[:16]) and one ``enhance_job`` run is
  requested for it, tagged ``vup/launched_by=inbox``, ``vup/source``, ``vup/inbox_path`` and ``vup/sha256``.

The file stays in the inbox while its run goes on. When the run ends, ``inbox_run_succeeded`` moves it (and its
sidecar) to ``done/``; ``inbox_run_failed`` / ``inbox_run_canceled`` move it to ``failed/`` with
``NAME.error.txt`` (the first line of the error and the Dagster run id). A failed run that Dagster will retry
(``dagster/will_retry``) leaves the file where it is for the retry. The partition is registered again at the
file's new place, so a run can still be re-executed from the UI. Nothing is ever deleted or overwritten: a name
taken in ``done/`` or ``failed/`` gets a ``-1``, ``-2``... suffix. Moves are ``os.replace`` within the inbox's
file system; a file that disappears between two checks is forgotten.

Settings: ``<inbox>/defaults.json`` (optional) holds the folder's defaults; a sidecar ``NAME.json`` next to
``NAME.mp4`` (same stem; write it before the video) overrides them key by key; ``null`` restores the built-in
default. Both are one JSON object with these keys (anything else, a wrong type or an impossible value is an
error):

==================  =======================  ===============================================================
key                 type                     meaning (``vup enhance`` option)
==================  =======================  ===============================================================
model               string                   upscaling model id (--model)
scale               integer                  1 (none), 2, 4 or 8 (--scale, default 4)
tile                integer                  tile size, 0 = automatic (--tile)
tile_overlap        integer                  (--tile-overlap)
batch               integer                  frames per model call, 0 = automatic (--batch)
backend             string                   auto, torch, ncnn... (--backend)
interpolate         integer                  frame interpolation factor 2, 4 or 8 (--interpolate)
fps                 number or string         interpolate to this rate, e.g. 60 or "60000/1001" (--fps)
interp_method       string                   auto (default), rife, flow, blend, minterpolate
dedup               boolean                  drop duplicate frames before interpolating (--dedup)
temporal            string                   auto (default), flow, ema, none (--temporal)
temporal_strength   number                   in [0, 1) (--temporal-strength)
codec               string                   h264, h265, av1, prores, prores4444 or ffv1 (--codec)
crf                 integer                  0..51 (--crf)
preset              string                   x264/x265 preset (--preset)
pix_fmt             string                   output pixel format (--pix-fmt)
chunk_seconds       number                   chunk length, > 0 (--chunk-seconds)
scene_detection     boolean                  move chunk cuts to scene changes (default true)
vmaf                boolean                  compute VMAF when a reference is given (default true)
output              string                   output file name (no folder), .mp4/.mkv/.mov
==================  =======================  ===============================================================

Example sidecar ``holiday.json``: ``{"scale": 2, "temporal": "flow", "fps": 60, "crf": 20}``.

Outputs go where ``vup enhance`` puts them: ``<workspace>/outputs/<partition>/<stem>_enhanced.mp4`` (``.mov`` for
ProRes, ``.mkv`` for FFV1), or
``<workspace>/outputs/<output>`` when the sidecar names one (a plain file name; a path is refused).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from pathlib import Path
from typing import Any

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    sensor,
)

from orchestration.graphs.enhance_steps import enhance_run_config
from orchestration.graphs.retries import limit_tags
from orchestration.launch.events import error_line
from orchestration.launch.request import EnhanceRequest
from orchestration.launch.validate import validate_request
from orchestration.resources.config import (
    ChunkPlanConfig,
    EncodeConfig,
    InterpolateConfig,
    MetricsConfig,
    TemporalConfig,
    UpscaleConfig,
)
from orchestration.resources.core import WorkspaceResource
from orchestration.resources.workspace import Workspace, register_video
from stages.errors import SettingsError, StageError
from stages.models.catalog import DEFAULT_UPSCALE_MODEL
from stages.store.fsutil import atomic_write_text, sha256_file

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
PARTIAL_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download")
DEFAULTS_FILE = "defaults.json"
ENHANCE_JOB = "enhance_job"

TAG_LAUNCHED_BY = "vup/launched_by"
TAG_SOURCE = "vup/source"
TAG_INBOX_PATH = "vup/inbox_path"
TAG_SHA256 = "vup/sha256"
WILL_RETRY_TAG = "dagster/will_retry"

# key -> (accepted types, description of the type for error messages)
_NUMBER = (int, float)
SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a string"),
    "scale": ((int,), "an integer"),
    "tile": ((int,), "an integer"),
    "tile_overlap": ((int,), "an integer"),
    "batch": ((int,), "an integer"),
    "backend": ((str,), "a string"),
    "interpolate": ((int,), "an integer"),
    "fps": ((int, float, str), "a number or a string such as \"60000/1001\""),
    "interp_method": ((str,), "a string"),
    "dedup": ((bool,), "true or false"),
    "temporal": ((str,), "a string"),
    "temporal_strength": (_NUMBER, "a number"),
    "codec": ((str,), "a string"),
    "crf": ((int,), "an integer"),
    "preset": ((str,), "a string"),
    "pix_fmt": ((str,), "a string"),
    "chunk_seconds": (_NUMBER, "a number"),
    "scene_detection": ((bool,), "true or false"),
    "deinterlace": ((str,), "auto, off, frame or field"),
    "square_pixels": ((bool,), "true or false"),
    "vmaf": ((bool,), "true or false"),
    "output": ((str,), "a file name"),
}
# A valid value of each key, for error messages.
_EXAMPLES: dict[str, Any] = {
    "model": DEFAULT_UPSCALE_MODEL, "scale": 2, "tile": 0, "tile_overlap": 16, "batch": 0, "backend": "auto",
    "interpolate": 2, "fps": 60, "interp_method": "auto", "dedup": True, "temporal": "flow",
    "temporal_strength": 0.6, "codec": "h264", "crf": 18, "preset": "medium", "pix_fmt": "yuv420p",
    "chunk_seconds": 10, "scene_detection": True, "deinterlace": "auto", "square_pixels": True, "vmaf": False,
    "output": "holiday_enhanced.mp4",
}


# --------------------------------------------------------------------------------------------- files and moves


def is_candidate(path: Path) -> bool:
    """A video the inbox should look at: a file with a video suffix, not hidden, not a partial download."""
    name = path.name
    if name.startswith(".") or name.endswith("~") or name.lower().endswith(PARTIAL_SUFFIXES):
        return False
    return path.suffix.lower() in VIDEO_SUFFIXES


def sidecar_of(path: Path) -> Path:
    return path.with_suffix(".json")


def _stat(path: Path) -> list[int] | None:
    """[size, mtime_ns] of the file and of its sidecar (0, 0 when absent); None when the file is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    try:
        side = sidecar_of(path).stat()
        side_stat = [side.st_size, side.st_mtime_ns]
    except OSError:
        side_stat = [0, 0]
    return [st.st_size, st.st_mtime_ns, *side_stat]


def _unique_stem(folder: Path, stem: str, suffix: str) -> str:
    """``stem``, or ``stem-1``, ``stem-2``... such that none of its files exist in ``folder``."""
    notes = (suffix, ".json", ".error.txt", ".duplicate.txt")
    candidate, n = stem, 0
    while any((folder / f"{candidate}{ext}").exists() for ext in notes):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def _sidecar_shared(path: Path) -> bool:
    """Another video in the same folder has the same stem (so the sidecar belongs to it too)."""
    try:
        return any(other != path and other.stem == path.stem and is_candidate(other)
                   for other in path.parent.iterdir())
    except OSError:
        return False


def move_aside(path: Path, folder: Path, note_kind: str | None = None, note: str | None = None) -> Path | None:
    """Move ``path`` (and its sidecar, unless another video shares it) into ``folder`` without overwriting;
    write ``STEM.<note_kind>.txt`` next to it. Returns the new path, or None if the file had gone."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = _unique_stem(folder, path.stem, path.suffix)
    target = folder / f"{stem}{path.suffix}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    sidecar = sidecar_of(path)
    if sidecar.is_file() and not _sidecar_shared(path):
        try:
            os.replace(sidecar, folder / f"{stem}.json")
        except FileNotFoundError:
            pass
    if note_kind is not None:
        atomic_write_text(folder / f"{stem}.{note_kind}.txt", (note or "").rstrip("\n") + "\n")
    return target


# ---------------------------------------------------------------------------------------------------- settings


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"inbox: {path.name} is not valid JSON ({exc}); fix it or remove it") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"inbox: {path.name} must hold one JSON object such as {{\"scale\": 2}}")
    for key, value in data.items():
        if key not in SCHEMA:
            close = difflib.get_close_matches(str(key), SCHEMA, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(
                f"inbox: {path.name}: unknown key {key!r}{hint}; use one of {', '.join(SCHEMA)}"
            )
        types, what = SCHEMA[key]
        if value is None:
            continue
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise SettingsError(f"inbox: {path.name}: {key} must be {what}, not {json.dumps(value)}; write it as "
                                f"e.g. {json.dumps({key: _EXAMPLES[key]})}")
    return data


def load_settings(inbox: Path, video: Path) -> dict[str, Any]:
    """The folder's defaults overridden by the video's sidecar (``None`` values dropped).

    Raises:
        SettingsError: invalid JSON, an unknown key or a value of the wrong type.
    """
    merged = {**_read_json(inbox / DEFAULTS_FILE), **_read_json(sidecar_of(video))}
    return {key: value for key, value in merged.items() if value is not None}


def build_request(workspace: Workspace, video: Path, settings: dict[str, Any], partition_key: str) -> EnhanceRequest:
    """The EnhanceRequest for ``video`` with ``settings`` (see the module docstring); output path included.

    Raises:
        SettingsError: the output is not a plain file name.
    """
    s = settings
    output_name = s.get("output")
    if output_name is not None:
        if not output_name or output_name != Path(output_name).name or "/" in output_name or "\\" in output_name \
                or output_name in (".", ".."):
            raise SettingsError(
                f"inbox: output {output_name!r} must be a plain file name such as {video.stem}_enhanced.mp4 "
                f"(it goes to {workspace.outputs})"
            )
        output = workspace.outputs / output_name
    else:
        from stages.media.codecs import default_suffix

        suffix = default_suffix(str(s.get("codec") or "h264"))  # .mov for ProRes, .mkv for FFV1
        output = workspace.outputs / partition_key / f"{video.stem}_enhanced{suffix}"
    interpolating = s.get("interpolate") is not None or s.get("fps") is not None
    return EnhanceRequest(
        input=video,
        output=output,
        chunk=ChunkPlanConfig(**{k: s[k] for k in ("chunk_seconds", "scene_detection", "deinterlace") if k in s}),
        upscale=UpscaleConfig(**{k: s[k] for k in ("model", "scale", "tile", "tile_overlap", "batch", "backend")
                                 if k in s}),
        encode=EncodeConfig(**{k: s[k] for k in ("codec", "crf", "preset", "pix_fmt", "square_pixels") if k in s}),
        temporal=TemporalConfig(**{{"temporal": "method", "temporal_strength": "strength"}[k]: s[k]
                                   for k in ("temporal", "temporal_strength") if k in s}),
        interpolate=InterpolateConfig(
            method=s.get("interp_method", "auto") if interpolating else "none",
            factor=s.get("interpolate"),
            fps=str(s["fps"]) if s.get("fps") is not None else None,
            dedup=s.get("dedup", False),
        ),
        metrics=MetricsConfig(**{k: s[k] for k in ("vmaf",) if k in s}),
    )


def run_config_for(request: Any) -> dict[str, Any]:
    """``enhance_job`` run config of a validated request (the output path made explicit)."""
    encode = EncodeConfig(**{**request.encode.model_dump(), "output_path": str(request.output)})
    return enhance_run_config(request.chunk, request.upscale, encode, request.temporal, request.interpolate,
                              request.metrics)


# --------------------------------------------------------------------------------------------- the inbox sensor


def _load_cursor(raw: str | None) -> dict[str, Any]:
    try:
        cursor = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        cursor = {}
    if not isinstance(cursor, dict):
        cursor = {}
    return {"files": dict(cursor.get("files") or {}), "seen": dict(cursor.get("seen") or {})}


def _earlier_run(context: SensorEvaluationContext, digest: str) -> str | None:
    """The id of a run the inbox requested earlier for this content, if the instance has one."""
    try:
        records = context.instance.get_run_records(
            RunsFilter(tags={TAG_LAUNCHED_BY: "inbox", TAG_SHA256: digest}), limit=1
        )
    except Exception:  # noqa: BLE001 - best effort (no instance in some tests); the cursor is the main record
        return None
    return records[0].dagster_run.run_id if records else None


def evaluate_inbox(context: SensorEvaluationContext, workspace: Workspace) -> SensorResult | SkipReason:
    """One look at the inbox (the body of ``inbox_sensor``; see the module docstring)."""

    inbox = workspace.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    cursor = _load_cursor(context.cursor)
    previous: dict[str, list[int]] = cursor["files"]
    seen: dict[str, dict[str, Any]] = cursor["seen"]

    listing: dict[str, list[int]] = {}
    for entry in sorted(inbox.iterdir()):
        if entry.is_file() and is_candidate(entry):
            stat = _stat(entry)
            if stat is not None:
                listing[entry.name] = stat
    in_flight: dict[str, str] = {}
    for digest, info in seen.items():
        if info.get("in_inbox"):
            if info["name"] in listing:
                in_flight[info["name"]] = digest
            else:
                info["in_inbox"] = False  # moved away (done, failed, or by the user)

    waiting: dict[str, list[int]] = {}
    requests: list[RunRequest] = []
    keys: list[str] = []
    notes: list[str] = []
    for name, stat in listing.items():
        path = inbox / name
        flight = in_flight.get(name)
        if flight is not None and seen[flight].get("stat", [])[:2] == stat[:2]:
            continue  # its run is under way (a sidecar edit changes nothing now); the run status sensors move it
        if stat[0] == 0 or previous.get(name) != stat:
            waiting[name] = stat  # new, empty or still growing: look again next time
            continue
        try:
            digest = sha256_file(path)
        except OSError:
            continue  # gone (or unreadable) since the listing
        earlier = seen.get(digest)
        if earlier is not None and earlier.get("in_inbox") and earlier["name"] == name:
            earlier["stat"] = stat  # the file of a run under way, only touched
            continue
        earlier_run = _earlier_run(context, digest) if earlier is None else None
        if earlier is not None or earlier_run is not None:
            what = (f"{earlier['name']} (partition {earlier['key']}, run key {digest})" if earlier is not None
                    else f"run {earlier_run}")
            moved = move_aside(path, workspace.inbox_done, "duplicate",
                               f"{name}: the same content was already requested from the inbox as {what}; "
                               "not processed again. Re-execute that run in the Dagster UI (vup dev) or use "
                               "`vup enhance` to process it again.")
            if moved is not None:
                notes.append(f"{name}: duplicate of {what}")
            continue
        key = digest[:16]
        try:
            settings = load_settings(inbox, path)
            request = build_request(workspace, path, settings, key)
            validate_request(request)
        except (StageError, ValueError) as exc:  # ValueError: a pydantic ValidationError of a Config
            if not path.exists():
                continue
            move_aside(path, workspace.inbox_failed, "error", str(exc).splitlines()[0] if str(exc) else repr(exc))
            notes.append(f"{name}: refused: {exc}")
            continue
        try:
            record = register_video(workspace, path, sha256=digest)
        except (StageError, OSError):
            continue  # vanished since it was hashed
        if _stat(path) != stat:
            waiting[name] = _stat(path) or stat  # changed while being checked: treat as still being written
            continue
        seen[digest] = {"name": name, "key": record.key, "stat": stat, "in_inbox": True}
        keys.append(record.key)
        requests.append(
            RunRequest(
                run_key=digest,
                partition_key=record.key,
                run_config=run_config_for(request),
                tags={TAG_SOURCE: name, TAG_LAUNCHED_BY: "inbox", TAG_INBOX_PATH: str(path), TAG_SHA256: digest,
                      **limit_tags(request.max_runtime_hours)},
            )
        )
        notes.append(f"{name}: run requested for partition {record.key}")
    for note in notes:
        context.log.info(note)
    new_cursor = json.dumps({"files": waiting, "seen": seen}, sort_keys=True)
    partitions = [AddDynamicPartitionsRequest("videos", sorted(set(keys)))] if keys else []
    return SensorResult(run_requests=requests, dynamic_partitions_requests=partitions, cursor=new_cursor)


@sensor(
    name="inbox_sensor",
    job_name=ENHANCE_JOB,
    minimum_interval_seconds=5,
    default_status=DefaultSensorStatus.RUNNING,
    description="Enhances each fully written video dropped in the inbox folder (VUP_INBOX, else <workspace>/inbox); "
                "a sidecar NAME.json overrides <inbox>/defaults.json.",
)
def inbox_sensor(context: SensorEvaluationContext, workspace: WorkspaceResource):
    return evaluate_inbox(context, workspace.workspace())


# -------------------------------------------------------------------------------------------- completion moves


def _inbox_file(run: Any) -> Path | None:
    """The inbox file of an inbox-launched run, if it is still there with the content the run was for."""
    if run.tags.get(TAG_LAUNCHED_BY) != "inbox" or not run.tags.get(TAG_INBOX_PATH):
        return None
    path = Path(run.tags[TAG_INBOX_PATH])
    digest = run.tags.get(TAG_SHA256)
    try:
        if not path.is_file() or (digest and sha256_file(path) != digest):
            return None  # already moved, or another file took its name
    except OSError:
        return None
    return path


def _reregister(workspace: Workspace, moved: Path | None, sha256: str | None) -> None:
    """Point the partition at the file's new place so the run can still be re-executed (``sha256``: the
    digest :func:`_inbox_file` has just checked, so the file is not read again)."""
    if moved is not None:
        try:
            register_video(workspace, moved, sha256=sha256)
        except (StageError, OSError):
            pass


def _failure_reason(context: RunStatusSensorContext) -> str:
    """First line of the deepest error of the first failed step, else of the run failure event."""
    try:
        records = context.instance.get_records_for_run(
            run_id=context.dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE
        ).records
    except Exception:  # noqa: BLE001 - fall back to the run event
        records = []
    for record in records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event is not None else None
        if error is None:
            continue
        step = f"{event.step_key}: " if event.step_key else ""
        return step + error_line(error)
    message = (context.dagster_event.message or "").strip() if context.dagster_event is not None else ""
    return message.splitlines()[0] if message else "the run failed; open the Dagster UI (vup dev) for its logs"


def finish_run(context: RunStatusSensorContext, workspace: Workspace) -> SkipReason | None:
    """Move the input of a finished inbox run to ``done/`` or ``failed/`` (see the module docstring)."""
    run = context.dagster_run
    if run.tags.get(TAG_LAUNCHED_BY) != "inbox":
        return SkipReason(f"run {run.run_id} was not launched by the inbox")
    latest = context.instance.get_run_by_id(run.run_id) or run
    status = latest.status
    if status == DagsterRunStatus.FAILURE and str(latest.tags.get(WILL_RETRY_TAG, "")).lower() == "true":
        return SkipReason(f"run {run.run_id} failed and will be retried; its input stays in the inbox")
    path = _inbox_file(run)
    if path is None:
        return SkipReason(f"the input of run {run.run_id} is no longer in the inbox")
    folder = path.parent
    if status == DagsterRunStatus.SUCCESS:
        moved = move_aside(path, folder / "done")
        context.log.info(f"{path.name}: enhanced by run {run.run_id}; moved to {moved}")
    else:
        reason = "the run was canceled" if status == DagsterRunStatus.CANCELED else _failure_reason(context)
        moved = move_aside(path, folder / "failed", "error", f"{reason}\nrun: {run.run_id}")
        context.log.info(f"{path.name}: run {run.run_id} did not succeed ({reason}); moved to {moved}")
    _reregister(workspace, moved, run.tags.get(TAG_SHA256))
    return None


def _finisher(status: DagsterRunStatus, name: str, description: str):
    """A run status sensor that hands finished inbox runs of ``status`` to :func:`finish_run`."""

    @run_status_sensor(run_status=status, name=name, minimum_interval_seconds=5,
                       default_status=DefaultSensorStatus.RUNNING, description=description)
    def finisher(context: RunStatusSensorContext, workspace: WorkspaceResource) -> None:
        # Never a SkipReason: one tick handles every run that ended since the last, and Dagster fails a tick
        # that returns a SkipReason for one run after reacting to another (an inbox run and a page run ending
        # together); the reason goes to the tick's log instead.
        skipped = finish_run(context, workspace.workspace())
        if skipped is not None:
            context.log.debug(skipped.skip_message)

    return finisher


inbox_run_succeeded = _finisher(DagsterRunStatus.SUCCESS, "inbox_run_succeeded",
                                "Moves the input of a successful inbox run (and its sidecar) to <inbox>/done.")
inbox_run_failed = _finisher(DagsterRunStatus.FAILURE, "inbox_run_failed",
                             "Moves the input of a failed inbox run to <inbox>/failed with NAME.error.txt (why, "
                             "run id).")
inbox_run_canceled = _finisher(DagsterRunStatus.CANCELED, "inbox_run_canceled",
                               "Moves the input of a canceled inbox run to <inbox>/failed with NAME.error.txt.")


INBOX_SENSORS = [inbox_sensor, inbox_run_succeeded, inbox_run_failed, inbox_run_canceled]
