"""Finding and running the ffmpeg command-line tool.

Most work goes through PyAV; the ffmpeg binary is used for what its command line does best: muxing the
audio and subtitle streams of a source next to a new video stream, with per-stream copy or transcode.
The binary comes from an explicit path, the ``VUP_FFMPEG`` environment variable, or the one that
``imageio-ffmpeg`` ships.

No shell is ever involved: the binary gets an argument list, so quotes, ``;``, ``$(...)`` in file names are plain
characters. Text that has to go *inside* a filter graph (a path given to a filter option such as libvmaf's
``log_path``) is escaped for both levels ffmpeg parses it at, with :func:`filter_value`.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
from pathlib import Path

from stages.errors import EncodeError, SettingsError

logger = logging.getLogger(__name__)

FFMPEG_ENV = "VUP_FFMPEG"
_STDERR_TAIL_LINES = 12


# Characters with a meaning in a filter option value (``key=value:key=value``) and in a filter graph
# (``[in]filter=args,filter;...``); whitespace is escaped too, as ffmpeg trims it around unescaped tokens.
_OPTION_SPECIAL = re.compile(r"([\\':]|\s)")
_GRAPH_SPECIAL = re.compile(r"([\\'\[\],;]|\s)")


def escape_filter_option(value: str) -> str:
    """``value`` escaped as the value of one filter option (first level: ``\\``, ``'``, ``:``, whitespace)."""
    return _OPTION_SPECIAL.sub(r"\\\1", str(value))


def escape_filter_graph(args: str) -> str:
    """A filter's whole argument string escaped for a filter graph (second level: ``\\ ' [ ] , ;``, whitespace)."""
    return _GRAPH_SPECIAL.sub(r"\\\1", str(args))


def filter_value(value: str | os.PathLike[str]) -> str:
    """Any text (a file path, a title) as a filter option value inside a ``-vf`` / ``-lavfi`` graph: escaped at
    both levels, so it arrives verbatim whatever it holds (quotes, ``:``, ``;``, ``,``, brackets, backslashes,
    spaces, non-ASCII). Put the result after ``key=`` and leave the rest of the graph as it is."""
    return escape_filter_graph(escape_filter_option(os.fspath(value)))


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
    if isinstance(args, (str, bytes)):
        raise TypeError(f"{what}: run_ffmpeg takes an argument list, never a command string (no shell is used)")
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
