"""Small file-system helpers shared by the stages: checksums, atomic and durable writes, and file locks (blocking,
and non-blocking for pruning)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from stages.store.diskspace import raise_if_disk_full


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of the file at ``path``; OSError if it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(directory: str | Path) -> None:
    """Persist a rename on POSIX; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder, fsync and rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str = ".part") -> Iterator[Path]:
    """A temporary path next to ``path`` for a writer to fill. When the block ends normally the file is fsynced and
    renamed to ``path``; on any error it is removed, so nothing is left at ``path`` (its previous content stays).
    The name carries the pid, so the next run can delete what a killed process left (orchestration.sensors.watchdog)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.{os.getpid()}.", suffix=suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(OSError):  # still open by a writer on some systems: its own abort removes it
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the pid in the name lets the next run delete what a killed process left (orchestration.sensors.watchdog)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        raise_if_disk_full(exc, path.name, path.parent)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (created if missing; a no-op where fcntl is missing).

    Blocks while another thread or process holds it. A lock file may be deleted by whoever holds it (the chunk
    store's pruning does, see stages/store/cache.py): a waiter that then gets the lock of the deleted file notices
    (the path no longer names the file it locked) and locks the file now at the path instead, so two holders never
    hold "the same" lock on two different files.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    while True:
        handle = open(lock_path, "a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except BaseException:
            handle.close()
            raise
        if _still_at(handle.fileno(), lock_path):
            break
        handle.close()  # deleted (or replaced) while this waited: lock the file at the path now
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


@contextlib.contextmanager
def try_file_lock(lock_path: Path) -> Iterator[bool]:
    """Take the exclusive lock of :func:`file_lock` without waiting: yields True while holding it, False when another
    thread or process holds it (then nothing is held). The holder may delete ``lock_path`` before the block ends
    (see :func:`file_lock`). True where fcntl is missing."""
    try:
        import fcntl
    except ImportError:
        yield True
        return
    handle = open(lock_path, "a+b")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            # a holder deleted the file between our open and flock: the path is free of any holder of ours, but
            # say "held by another" rather than guess; the caller skips it and sees it again next time
            held = _still_at(handle.fileno(), lock_path)
            yield held
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not deleted or replaced since it was opened)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_ino, mine.st_dev) == (here.st_ino, here.st_dev)
