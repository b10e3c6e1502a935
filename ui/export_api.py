"""The HTTP API served beside the page: ``POST /api/export/upscale`` reframes and upscales one video through
Dagster and answers with the MP4.

Multipart fields: ``video`` (the file), ``keyframes_json`` (crop keyframes, ``[{"time", "x", "y", "width",
"height"}, ...]`` in source pixels and seconds), optional ``target_fps`` (default 30), ``size`` (``WIDTHxHEIGHT``;
default from the crop's aspect ratio), ``easing`` (``linear`` or ``ease``) and ``model``. The run is submitted to
the Dagster webserver like the page's runs (``reframe_job``, one ``reframes`` partition), so it shows in the Dagster
UI; the request waits for it. Errors answer JSON ``{"error": ..., "run_id": ...}``: 400 a bad upload, 401 no or
wrong login (HTTP Basic, when the page has one), 413 too large, 422 impossible keyframes or settings, 500 a failed
run, 504 a run still going after the wait (it goes on; its id and Dagster link are in the answer).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from orchestration.launch.runner import ReframeRequest
from orchestration.launch.uploads import (
    UploadError,
    accept_upload,
    human_size,
    max_upload_bytes,
)
from stages.errors import InputError, SettingsError, StageError
from stages.ops.reframe.crops import parse_size

EXPORT_PATH = "/api/export/upscale"
EXPORT_TIMEOUT_ENV = "VUP_EXPORT_TIMEOUT_S"
DEFAULT_EXPORT_TIMEOUT_S = 6 * 3600.0


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _receive(video: UploadFile, folder: Path, limit: int) -> Path:
    """Stream the upload to a temp file under ``folder``, refusing it past ``limit`` bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".export.{os.getpid()}.{secrets.token_hex(6)}.part"
    written = 0
    try:
        with tmp.open("wb") as out:
            while block := video.file.read(1 << 20):
                written += len(block)
                if written > limit:
                    raise HTTPException(413, f"upload: the video is above the {human_size(limit)} limit; trim it "
                                             "or raise it (vup serve --max-upload-mb)")
                out.write(block)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def build_export_router(service: Any, *, credentials: list[tuple[str, str]] | None = None,
                        timeout: float | None = None, max_upload: int | None = None) -> APIRouter:
    """The router of ``POST /api/export/upscale`` for ``service`` (orchestration.launch.service.DagsterService, or any
    object with its ``workspace``, ``submit_reframe``, ``wait``, ``failure_message`` and ``run_url``).
    ``credentials``: the page's logins; when given, the endpoint needs one of them as HTTP Basic auth."""
    router = APIRouter()
    basic = HTTPBasic(auto_error=False)
    wait_seconds = timeout if timeout is not None else float(os.environ.get(EXPORT_TIMEOUT_ENV,
                                                                            DEFAULT_EXPORT_TIMEOUT_S))

    def check_login(given: HTTPBasicCredentials | None = Depends(basic)) -> None:  # noqa: B008
        if not credentials:
            return
        if given is not None and any(secrets.compare_digest(given.username.encode(), user.encode())
                                     and secrets.compare_digest(given.password.encode(), password.encode())
                                     for user, password in credentials):
            return
        raise HTTPException(401, "login: this server needs a login; pass it with curl -u USER:PASSWORD",
                            headers={"WWW-Authenticate": "Basic"})

    @router.post(EXPORT_PATH, dependencies=[Depends(check_login)],
                 responses={200: {"content": {"video/mp4": {}}, "description": "the reframed video"}})
    def export_upscale(video: UploadFile = File(...), keyframes_json: str = Form(...),  # noqa: B008
                       target_fps: str = Form("30"), size: str | None = Form(None),
                       easing: str = Form("linear"), model: str | None = Form(None)):
        workspace = service.workspace
        limit = max_upload if max_upload is not None else max_upload_bytes()
        received = None
        try:
            received = _receive(video, workspace.uploads / "tmp", limit)
            upload = accept_upload(workspace, received, original_name=video.filename or "video.mp4", max_bytes=limit,
                                   move=True)
            request = ReframeRequest(input=upload.path, keyframes=keyframes_json, target_fps=target_fps,
                                     target=parse_size(size), easing=easing, model=model or None)
            run_id, output = service.submit_reframe(request, sha256=upload.sha256, info=upload.info)
        except HTTPException as exc:
            return _error(exc.status_code, str(exc.detail))
        except UploadError as exc:
            return _error(400, str(exc))
        except (SettingsError, InputError) as exc:
            return _error(422, str(exc))
        except StageError as exc:
            return _error(503, str(exc))
        finally:
            if received is not None:
                received.unlink(missing_ok=True)
        progress = service.wait(run_id, timeout=wait_seconds)
        links = {"run_id": run_id, "dagster": service.run_url(run_id)}
        if progress.status == "SUCCESS" and Path(output).is_file():
            return FileResponse(output, media_type="video/mp4", filename=Path(output).name,
                                headers={"X-Run-Id": run_id})
        if not progress.finished:
            return _error(504, f"export: the run is still going after {wait_seconds:.0f} s; it goes on, follow it "
                               "in the Dagster UI", **links)
        if progress.status == "CANCELED":
            return _error(500, "export: the run was cancelled", **links)
        return _error(500, service.failure_message(run_id), **links)

    return router


def mount_export_api(app: Any, service: Any, *, credentials: list[tuple[str, str]] | None = None) -> None:
    """Add the export route to a running Gradio app's FastAPI server (``Blocks.app`` after ``launch``)."""
    app.include_router(build_export_router(service, credentials=credentials))


__all__ = ["EXPORT_PATH", "build_export_router", "mount_export_api"]
