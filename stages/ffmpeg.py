"""Finding and running the ffmpeg command-line tool.

Most work goes through PyAV; the ffmpeg binary is used for what its command line does best: muxing the
audio and subtitle streams of a source next to a new video stream, with per-stream copy or transcode.
The binary comes from an explicit path, the ``VUP_FFMPEG`` environment variable, or the one that
``imageio-ffmpeg`` ships.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from pathlib import Path

from stages.errors import EncodeError, SettingsError

logger = logging.getLogger(__name__)

FFMPEG_ENV = "VUP_FFMPEG"
_STDERR_TAIL_LINES = 12


def find_ffmpeg(explicit: str | os.PathLike[str] | None = None) -> str:
    """Return the path of an executable ffmpeg binary.

    Looks, in order, at ``explicit``, the ``VUP_FFMPEG`` environment variable and the binary bundled with
    ``imageio-ffmpeg``.

    Raises:
        SettingsError: the chosen path does not exist or is not executable, or no binary can be found.
    """
    if explicit is not None:
        return _check_executable(str(explicit), "the explicit ffmpeg path")
    from_env = os.environ.get(FFMPEG_ENV)
    if from_env:
        return _check_executable(from_env, f"${FFMPEG_ENV}")
    try:
        import imageio_ffmpeg

        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise SettingsError(
            f"ffmpeg: no ffmpeg binary found ({exc}); install imageio-ffmpeg or set {FFMPEG_ENV} to an ffmpeg path"
        ) from exc
    return _check_executable(bundled, "the imageio-ffmpeg binary")


def _check_executable(path: str, origin: str) -> str:
    candidate = Path(path)
    if not candidate.is_file():
        raise SettingsError(
            f"ffmpeg: {origin} {path} does not exist or is not a file; "
            f"point {FFMPEG_ENV} at an ffmpeg binary or unset it to use the bundled one"
        )
    if not os.access(candidate, os.X_OK):
        raise SettingsError(f"ffmpeg: {origin} {path} is not executable; run `chmod +x {path}` or use another binary")
    return str(candidate)


def run_ffmpeg(
    args: list[str], *, ffmpeg: str | None = None, what: str = "ffmpeg"
) -> subprocess.CompletedProcess[str]:
    """Run ``ffmpeg -hide_banner -nostdin -y <args>`` and return the finished process (text output).

    ``what`` names the calling step in error messages (e.g. ``"encode: mux"``).

    Raises:
        SettingsError: no usable ffmpeg binary (see :func:`find_ffmpeg`).
        EncodeError: ffmpeg could not be started or exited with a non-zero status; the message carries the
            last lines of its standard error.
    """
    exe = find_ffmpeg(ffmpeg)
    command = [exe, "-hide_banner", "-nostdin", "-y", *[str(a) for a in args]]
    logger.debug("%s: running %s", what, shlex.join(command))
    try:
        completed = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    except OSError as exc:
        raise EncodeError(
            f"{what}: could not start ffmpeg {exe} ({exc}); check the binary or set {FFMPEG_ENV}"
        ) from exc
    if completed.returncode != 0:
        tail = [line for line in completed.stderr.strip().splitlines() if line.strip()][-_STDERR_TAIL_LINES:]
        detail = " | ".join(tail) if tail else "no output"
        raise EncodeError(
            f"{what}: ffmpeg failed with exit code {completed.returncode}: {detail}; "
            "check the input files and settings above"
        )
    return completed
