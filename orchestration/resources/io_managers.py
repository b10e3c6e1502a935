"""How the assets hand their values (small manifests, never frames) to the next step: pickles under
``<workspace>/dagster-storage``, one copy per run.

Dagster's ``FilesystemIOManager`` keeps one file per asset and partition, written in place. Two runs of the same
partition at the same time (the page and the CLI given the same video) then read each other's values: a
``--scale 2`` and a ``--scale 4`` run of one clip submitted together both produced x4 videos, because the gpu
pool ran the x4 run's ``upscale`` between the x2 run's ``upscale`` and its next step, which
loaded the x4 manifest. A reader could also catch a file half written.

Here every output is written (atomically: temp file, rename) to ``runs/<run id>/<asset>/<partition>``, the run's
own copy, and to ``<asset>/<partition>``, the latest of any run. An input is loaded from the copy of the run that
produced it, as Dagster reports it: this run, or on a re-execution the earlier run whose step it reuses. Only
when that copy does not exist (a run of some of the assets, started from the Dagster UI) does it fall back to
the latest copy, as ``FilesystemIOManager`` would.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableIOManager,
    DagsterInvariantViolationError,
    InputContext,
    OutputContext,
)

from stages.store.fsutil import atomic_write_bytes

RUNS_FOLDER = "runs"


def _relative(context: OutputContext | InputContext) -> Path:
    """``<asset key path>/<partition>`` (``<step>/<output>`` for an op output)."""
    if context.has_asset_key:
        parts = list(context.asset_key.path)
    else:
        output = context if isinstance(context, OutputContext) else context.upstream_output
        parts = [output.step_key, output.name]
    if context.has_asset_partitions:
        parts.append(context.asset_partition_key)
    return Path(*parts)


def _dump(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))  # a full disk: DiskFullError


class RunScopedIOManager(ConfigurableIOManager):
    """Pickled asset values under ``base_dir``, each run reading its own (see the module docstring)."""

    base_dir: str

    def _run_path(self, run_id: str, relative: Path) -> Path:
        return Path(self.base_dir) / RUNS_FOLDER / run_id / relative

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        relative = _relative(context)
        _dump(self._run_path(context.run_id, relative), obj)
        _dump(Path(self.base_dir) / relative, obj)

    def load_input(self, context: InputContext) -> Any:
        relative = _relative(context)
        candidates = []
        try:
            run_id = context.upstream_output.run_id if context.upstream_output is not None else None
        except DagsterInvariantViolationError:  # no producing run known
            run_id = None
        if run_id:
            candidates.append(self._run_path(run_id, relative))
        candidates.append(Path(self.base_dir) / relative)
        for path in candidates:
            if path.is_file():
                with path.open("rb") as handle:
                    return pickle.load(handle)
        raise FileNotFoundError(
            f"io: no stored value of {relative} (looked in {', '.join(str(p) for p in candidates)}); "
            "materialize the upstream asset for this partition first"
        )
