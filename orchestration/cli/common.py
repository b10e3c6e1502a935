"""What the run commands share: the workspace a command opens, the progress bars a run feeds, and the message of
a failed run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import ClassVar


def _workspace(args: argparse.Namespace):
    from orchestration.resources.workspace import (
        Workspace,
        default_workspace,
        prepare_dagster_home,
    )

    root = Path(args.workspace).expanduser() if args.workspace else default_workspace()
    workspace = Workspace(root.resolve()).ensure()
    os.environ["VUP_WORKSPACE"] = str(workspace.root)
    prepare_dagster_home(workspace)
    return workspace


class _Progress:
    """One tqdm bar per stage, fed by the run's per-chunk events; a stage's bar opens when the one before it
    is full, so its clock starts when the stage does."""

    LABELS: ClassVar[dict[str, str]] = {"frames": "decode ", "interpolate": "interp ", "cohere": "coherence"}

    def __init__(self, totals: dict[str, int], enabled: bool) -> None:
        """``totals``: frames each stage will report, in stage order (stages that do no work are left out)."""
        self.totals = dict(totals)
        self.stages = tuple(self.totals)
        self.enabled = enabled
        self.bars: dict[str, object] = {}

    def _bar(self, stage: str):
        from tqdm import tqdm

        if stage not in self.bars:
            for other in self.bars.values():
                other.close()
            total = self.totals.get(stage, 0) or None
            self.bars[stage] = tqdm(total=total, desc=self.LABELS.get(stage, stage.ljust(7)), unit="frame", leave=True)
        return self.bars[stage]

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        stage = str(event.get("stage"))
        bar = self._bar(stage)
        bar.update(int(event.get("frames", 0)))
        if event.get("reused"):
            bar.set_postfix_str("cached")
        if stage in self.stages[:-1] and bar.n >= self.totals[stage]:
            self._bar(self.stages[self.stages.index(stage) + 1])

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _run_failed(outcome, workspace) -> int:
    """Say why a run failed and where its logs are; the exit code of a failed run."""
    print(f"error: {outcome.error}", file=sys.stderr)
    print(f"(run {outcome.run_id} in {workspace.dagster_home}; `vup dev` shows its logs)", file=sys.stderr)
    return 1


class _ChunkProgress:
    """One tqdm bar per stage counting chunks, fed by the run's per-chunk events (jobs whose frame totals are only
    known once they run: production plans and reframes)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, object] = {}

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        stage = str(event.get("stage"))
        if stage not in self.bars:
            for other in self.bars.values():
                other.close()
            self.bars[stage] = tqdm(total=int(event.get("chunks") or 0) or None, desc=f"{stage:<11}", unit="chunk")
        bar = self.bars[stage]
        bar.update(1)
        if event.get("reused"):
            bar.set_postfix_str("cached")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()

