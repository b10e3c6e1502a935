"""Helpers shared by the benchmarks: results folder, versions, peak memory, command line, CPU-noise monitor.

Nothing here imports torch at module import, so a benchmark worker that does not need torch (the ncnn one)
stays free of it.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]

# distribution names whose versions a benchmark report shows, by the name the report uses
_DISTRIBUTIONS = {"torch": "torch", "ncnn": "ncnn", "av": "av", "spandrel": "spandrel", "numpy": "numpy",
                  "dagster": "dagster"}


def timestamp() -> str:
    """Local time as ``YYYYmmdd-HHMMSS`` (file names)."""
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size of this process (``RUSAGE_SELF``) or of its largest waited-for descendant
    (``RUSAGE_CHILDREN``), in MiB. Linux reports KiB, macOS bytes."""
    value = resource.getrusage(who).ru_maxrss
    return value / (1024 * 1024) if sys.platform == "darwin" else value / 1024


def ffmpeg_version(exe: str | None = None) -> str:
    """First words of ``ffmpeg -version`` of the binary the project uses ("unknown" if it cannot be run)."""
    try:
        if exe is None:
            from stages.media.ffmpeg import find_ffmpeg

            exe = find_ffmpeg()
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30, check=False).stdout
        first = out.splitlines()[0] if out else ""
        parts = first.split()
        return parts[2] if len(parts) > 2 and parts[0] == "ffmpeg" else (first or "unknown")
    except Exception:  # noqa: BLE001 - a version string must never fail a benchmark
        return "unknown"


def versions(names: tuple[str, ...] = ("torch", "ncnn", "av", "spandrel", "numpy", "dagster"),
             *, ffmpeg: bool = True) -> dict[str, str]:
    """Versions of python, the named packages (from their installed metadata, no import) and ffmpeg."""
    result = {"python": platform.python_version()}
    for name in names:
        try:
            result[name] = importlib.metadata.version(_DISTRIBUTIONS.get(name, name))
        except importlib.metadata.PackageNotFoundError:
            result[name] = "not installed"
    if ffmpeg:
        result["ffmpeg"] = ffmpeg_version()
    return result


def command_line(module: str, argv: list[str]) -> str:
    """How to run the benchmark again: ``python -m <module> <args>``."""
    return " ".join([Path(sys.executable).name, "-m", module, *argv])


def _proc_stat() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat; None where unavailable."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = ticks[:7]
    steal = ticks[7] if len(ticks) > 7 else 0
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuNoise:
    """CPU used by other programs while a measured child ran.

    ``other_cores`` is the average number of cores busy with something else than the child (and its own
    children) over its lifetime; ``steal_cores`` the cores the hypervisor gave to other guests. None where
    /proc/stat is unavailable.
    """

    wall_s: float
    other_cores: float | None
    steal_cores: float | None


class CpuNoiseMonitor:
    """Measure other programs' CPU use around a child process the caller starts and waits for.

    Use as a context manager around ``subprocess.run``; read ``.result`` afterwards.
    """

    def __enter__(self):
        self._stat = _proc_stat()
        self._children = _children_cpu()
        self._started = time.perf_counter()
        self.result: CpuNoise | None = None
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._started
        stat = _proc_stat()
        if self._stat is None or stat is None or wall <= 0:
            self.result = CpuNoise(wall, None, None)
            return
        busy = stat[0] - self._stat[0]
        ours = _children_cpu() - self._children
        self.result = CpuNoise(wall, max(0.0, busy - ours) / wall, max(0.0, stat[1] - self._stat[1]) / wall)


def vm_hwm_mib(pid: int | str = "self") -> float | None:
    """Peak resident memory (``VmHWM``) of a live process, in MiB; None where /proc has no such figure.

    Unlike ``ru_maxrss``, which Linux carries over ``fork`` + ``exec`` (a child started by a big process
    reports at least the parent's size), ``VmHWM`` belongs to the process's own address space.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _child_pids(pid: int) -> list[int]:
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                children.extend(int(v) for v in handle.read().split())
        except (OSError, ValueError):
            continue
    return children


def _comm(pid: int) -> str:
    """The process's program and, for an interpreter, its script or module (``python -m dagster...``)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    name = Path(argv[0]).name
    if name.startswith("python") and len(argv) > 1:
        rest = argv[1:]
        name += " " + (" ".join(rest[:2]) if rest[0] in ("-m", "-c") else Path(rest[0]).name)
    return name[:80]


class ProcessTreeWatcher:
    """Poll the peak RSS (``VmHWM``) of every descendant of ``root`` while it runs (Linux /proc only).

    ``peaks`` maps ``(pid, program)`` to the peak MiB seen; a process caught between ``fork`` and ``exec`` (still
    the root's program, its memory shared with the root) is left out. A process's last growth before it exits
    may be missed by up to one ``interval``.
    """

    def __init__(self, root: int, interval: float = 0.05) -> None:
        import threading

        self.root = root
        self.interval = interval
        self.peaks: dict[tuple[int, str], float] = {}
        self._root_name: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watcher", daemon=True)

    def _poll(self) -> None:
        if self._root_name is None:
            self._root_name = _comm(self.root)
        pending = _child_pids(self.root)
        while pending:
            pid = pending.pop()
            pending.extend(_child_pids(pid))
            name = _comm(pid)
            if name == self._root_name:  # forked, not yet exec'd: its pages are the root's
                continue
            hwm = vm_hwm_mib(pid)
            if hwm is not None:
                self.peaks[(pid, name)] = max(hwm, self.peaks.get((pid, name), 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def largest(self, prefix: str = "") -> tuple[str, float] | None:
        """(program, peak MiB) of the largest descendant whose program starts with ``prefix``; None if none."""
        found = [(peak, name) for (_pid, name), peak in self.peaks.items() if name.startswith(prefix)]
        if not found:
            return None
        peak, name = max(found)
        return name, peak

    def describe(self) -> str:
        """Each descendant seen with its peak, e.g. ``ffmpeg 61.2 MiB, tail 1.9 MiB``."""
        return ", ".join(f"{name} {peak:.1f} MiB" for (_pid, name), peak in sorted(self.peaks.items()))


def run_measured(command: list[str], *, interval: float = 0.005) -> tuple[int, str, float | None]:
    """Run ``command`` and return (exit status, last lines of its stderr, its peak RSS in MiB).

    The peak is the child's own ``VmHWM``, polled every ``interval`` seconds (None where /proc has none and
    ``ru_maxrss`` of the children is used instead, which on Linux also counts the size inherited over fork).
    """
    import tempfile

    peak: float | None = None
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
        own = _comm(os.getpid())
        while process.poll() is None:
            if _comm(process.pid) != own:  # exec'd: the figure is the child's own, not this process's copy
                hwm = vm_hwm_mib(process.pid)
                if hwm is not None:
                    peak = max(peak or 0.0, hwm)
            time.sleep(interval)
        errors.seek(0)
        tail = [line for line in errors.read().decode("utf-8", "replace").splitlines() if line.strip()][-8:]
    if peak is None:
        peak = maxrss_mib(resource.RUSAGE_CHILDREN)
    return process.returncode, " | ".join(tail), peak


def wait_for_idle(timeout: float, *, threshold: float = 0.1, quiet_s: int = 3) -> tuple[bool, float]:
    """Wait until the machine has been idle (under ``threshold`` cores busy) for ``quiet_s`` one-second samples
    in a row, at most ``timeout`` seconds. Returns (idle reached, seconds waited); (True, 0) without /proc/stat."""
    started = time.perf_counter()
    quiet = 0
    previous = _proc_stat()
    if previous is None or timeout <= 0:
        return previous is None, 0.0
    while time.perf_counter() - started < timeout:
        time.sleep(1.0)
        current = _proc_stat()
        quiet = quiet + 1 if current is not None and current[0] - previous[0] < threshold else 0
        previous = current
        if quiet >= quiet_s:
            return True, time.perf_counter() - started
    return False, time.perf_counter() - started
