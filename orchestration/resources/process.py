"""Which process executes a run: tags (pid, host, start time, pid namespace) set on every run, and whether the
process they name has ended (orchestration.sensors.watchdog ends such runs)."""

from __future__ import annotations

import os
import socket

PID_TAG, HOST_TAG, PROCESS_START_TAG, PID_NAMESPACE_TAG = "vup/pid", "vup/host", "vup/process_start", "vup/pidns"


def process_tags() -> dict[str, str]:
    """Tags that say which process executes a run (pid, host, the process's start time, pid namespace), so a
    later check can tell that it died without ending the run (kill -9, power loss, OOM killer)."""
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    start = _process_start(os.getpid())
    if start is not None:
        tags[PROCESS_START_TAG] = start
    namespace = pid_namespace()
    if namespace is not None:
        tags[PID_NAMESPACE_TAG] = namespace
    return tags


def pid_namespace() -> str | None:
    """This process's pid namespace (Linux): containers that share a host name do not share pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), telling a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def process_gone(tags: dict[str, str]) -> bool:
    """Whether the process named by ``tags`` (on this host) has ended; False when it may still be running."""
    try:
        pid = int(tags[PID_TAG])
    except (KeyError, ValueError):
        return False
    if not pid_exists(pid):
        return True
    start = tags.get(PROCESS_START_TAG)
    current = _process_start(pid)
    return start is not None and current is not None and current != start  # the pid now belongs to another
