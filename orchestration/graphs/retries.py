"""Which step failures Dagster retries (transient ones only), and how long a run may take.

Every enhance asset is wrapped by ``retry_transient_only``. A busy or briefly unavailable file, a dropped
connection or a locked SQLite database makes the step ask Dagster for a retry (``RetryRequested``) on the schedule
of ``RETRY_POLICY`` (3 retries, exponential back-off from 2 s, jitter); cached chunks make the retry resume where
the step stopped. Anything else (a bad input, an impossible setting, out of memory at the floor, a full disk, a
bug) becomes a ``Failure`` with ``allow_retries=False``: retrying it would fail the same way and only delay the
message. The original error stays the ``Failure``'s cause, so the first-line message the user sees is unchanged
(``orchestration.launch.events.error_line``).

The policy is applied by the wrapper, not set as the assets' ``retry_policy``: Dagster retries a step that has a
retry policy even when it was interrupted, so a cancelled run's step would start again and the run would finish
instead of stopping (seen with the page's Cancel button). Without a policy on the asset, an interrupt ends the
step and the run is CANCELED.

A lost run worker (a crashed or killed process) is not a step failure: ``orchestration.sensors.watchdog`` ends its run
and ``run_retries`` in the embedded dagster.yaml starts the run again (see ``orchestration.resources.workspace``).
"""

from __future__ import annotations

import errno
import functools
import math
import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from dagster import Backoff, Failure, Jitter, RetryPolicy, RetryRequested

from stages.errors import SettingsError, StageError

RETRY_POLICY = RetryPolicy(max_retries=3, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

TRANSIENT_ERRNOS = frozenset(
    code for code in (
        errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETXTBSY, errno.ESTALE, errno.EDEADLK, errno.ENOLCK,
        errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED,
    )
)

F = TypeVar("F", bound=Callable[..., Any])


def is_transient(exc: BaseException) -> bool:
    """True for errors that may not happen again a moment later (busy file, timeout, dropped connection,
    locked SQLite database); typed stage errors and everything else are permanent."""
    if isinstance(exc, StageError):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in TRANSIENT_ERRNOS or getattr(exc, "winerror", None) in (32, 33)  # sharing/lock violation
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    return False


def retry_transient_only(fn: F) -> F:
    """Wrap an asset function (its first argument is the context) so only transient errors are retried, on
    ``RETRY_POLICY``'s schedule (see the module doc)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (Failure, RetryRequested):
            raise
        except Exception as exc:
            if is_transient(exc):
                context = kwargs.get("context", args[0] if args else None)
                attempt = getattr(context, "retry_number", 0) + 1
                raise RetryRequested(max_retries=RETRY_POLICY.max_retries,
                                     seconds_to_wait=RETRY_POLICY.calculate_delay(attempt)) from exc
            raise Failure(description=str(exc) or type(exc).__name__, allow_retries=False) from exc

    return wrapper  # type: ignore[return-value]


MAX_RUNTIME_TAG = "dagster/max_runtime"  # read by the daemon's run monitoring (seconds)
MAX_RUNTIME_ENV = "VUP_MAX_RUNTIME_HOURS"
DEFAULT_MAX_RUNTIME_HOURS = 24.0


def max_runtime_seconds(hours: float | None = None) -> float | None:
    """The longest a run may take before it is stopped (a hung step never holds the GPU pool overnight):
    ``hours``, else ``VUP_MAX_RUNTIME_HOURS``, else 24 h; 0 means no limit (returns None).

    Raises SettingsError with what to do when the value is not a number or is negative."""
    if hours is None:
        raw = os.environ.get(MAX_RUNTIME_ENV, "").strip()
        try:
            hours = float(raw) if raw else DEFAULT_MAX_RUNTIME_HOURS
        except ValueError:
            raise SettingsError(f"limits: {MAX_RUNTIME_ENV}={raw!r} is not a number of hours; use e.g. 24 "
                                "(0: no limit)") from None
    if not math.isfinite(hours) or hours < 0:
        raise SettingsError(f"limits: a max runtime of {hours} hours is impossible; use a positive number "
                            "(0: no limit)")
    return hours * 3600.0 if hours > 0 else None


def limit_tags(hours: float | None = None) -> dict[str, str]:
    """Run tags that make the Dagster daemon's run monitoring end a run past its max runtime
    (``dagster/max_runtime``, seconds). Runs of the CLI are watched by the runner itself."""
    seconds = max_runtime_seconds(hours)
    return {MAX_RUNTIME_TAG: str(int(seconds))} if seconds else {}
