"""`vup cache`: what the chunk store holds (`info`) and freeing it (`prune`); see docs/cache.md. The store logic is
stages/store/cache.py; this module parses the options and prints."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from stages.errors import SettingsError

AGE_HELP = "30d, 12h, 90m, 2w"
SIZE_HELP = "50G, 500MB, 1.5T, 40GiB, or a share of the disk such as 20%%"


def add_cache_parser(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `vup cache info` and `vup cache prune` to the subcommands ``sub`` (``add_common``: --workspace, -q, -v)."""
    cache = sub.add_parser("cache", help="the chunk store: its size (info) and freeing space (prune)")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    info = cache_sub.add_parser("info", help="size of the chunk store: per stage, per video, by last use; "
                                             "orphaned chunks; the size budget")
    info.add_argument("--json", action="store_true")
    add_common(info)
    info.set_defaults(func=cmd_cache_info)
    prune = cache_sub.add_parser(
        "prune", help="delete chunks (never those of a running job); without options: down to the size budget",
        description="Delete chunks of the store; a later run makes again what it needs. Options narrow what may go "
                    "(all must hold); --max-size stops once the store is that small. Without options: down to the "
                    "size budget (vup cache info shows it).")
    prune.add_argument("--older-than", metavar="AGE", help=f"only chunks not used for AGE ({AGE_HELP})")
    prune.add_argument("--max-size", metavar="SIZE",
                       help=f"orphaned, then least recently used chunks until the store holds at most SIZE "
                            f"({SIZE_HELP})")
    prune.add_argument("--video", metavar="KEY",
                       help="only the chunks of one video (or production plan, or reframe): its key, or the start of "
                            "it, as `vup cache info` lists it")
    prune.add_argument("--orphaned", action="store_true",
                       help="only chunks no current version can reuse (old folders, old stage versions, "
                            "interrupted writes)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be freed; delete nothing")
    prune.add_argument("--json", action="store_true")
    add_common(prune)
    prune.set_defaults(func=cmd_cache_prune)


def _workspace(args: argparse.Namespace):
    from orchestration.cli.common import _workspace as open_workspace

    return open_workspace(args)


def _budget(workspace: Any):
    from stages.store.budget import resolve_budget

    return resolve_budget(workspace.chunks, workspace.config_file)


def cmd_cache_info(args: argparse.Namespace) -> int:
    from stages.store.cache import cache_info

    workspace = _workspace(args)
    try:
        budget, problem = _budget(workspace), None
    except SettingsError as exc:  # still show the store; say what is wrong with the budget
        budget, problem = None, str(exc)
    info = cache_info(workspace.chunks, budget=budget)
    labels = {o.owner: o.label or _registered_name(workspace, o.owner) for o in info.by_owner}
    if args.json:
        data = info.to_dict()
        data["budget_error"] = problem
        for entry in data["by_owner"]:
            entry["label"] = labels.get(entry["owner"])
        print(json.dumps(data, indent=2))
        return 0
    lines = info_lines(info, labels)
    if problem is not None:
        lines.insert(2, f"  budget: not applied: {problem}")
    print("\n".join(lines))
    return 0


def info_lines(info: Any, labels: dict[str, str | None] | None = None, now: float | None = None) -> list[str]:
    """`vup cache info` as lines of text (``info``: a stages.store.cache.CacheInfo)."""
    from stages.store.budget import format_duration
    from stages.store.diskspace import human_bytes

    now = time.time() if now is None else now
    labels = labels or {}

    def row(name: str, usage: Any, extra: str = "") -> str:
        plural = "" if usage.chunks == 1 else "s"
        return f"    {name:<44} {human_bytes(usage.bytes):>9}  {usage.chunks:>6} chunk{plural}{extra}"

    lines = [f"chunk store: {info.root}",
             f"  total: {human_bytes(info.total_bytes)} in {info.chunks} chunk{'' if info.chunks == 1 else 's'}"
             + (f" (and {human_bytes(info.writing_bytes)} being written)" if info.writing_bytes else "")]
    if info.budget is not None:
        lines.append(f"  budget: {info.budget.describe()}; applied when a job ends")
    if info.disk_free is not None and info.disk_total is not None:
        lines.append(f"  disk: {human_bytes(info.disk_free)} free of {human_bytes(info.disk_total)}")
    if not info.chunks and not info.writing_bytes:
        lines.append("  (empty)")
        return lines
    lines.append("  per stage folder:")
    lines += [row(stage, usage) for stage, usage in sorted(info.by_stage.items(), key=lambda kv: -kv[1].bytes)]
    lines.append("  per video / plan / reframe (a chunk two of them used counts for both):")
    for owner in info.by_owner:
        label = labels.get(owner.owner) or owner.label
        name = f"{owner.owner} {owner.job}" + (f" ({label})" if label else "")
        lines.append(row(name[:44], owner.usage, f"  used {format_duration(now - owner.last_used)} ago"))
    if info.unattributed.chunks:
        lines.append(row("not recorded for a job (older, or a script)", info.unattributed))
    lines.append("  by last use:")
    lines += [row(bucket, usage) for bucket, usage in info.by_age.items() if usage.chunks]
    orphaned = info.orphaned_total
    if orphaned.chunks:
        lines.append(f"  orphaned (no current version can reuse them): {human_bytes(orphaned.bytes)} in "
                     f"{orphaned.chunks} chunk{'' if orphaned.chunks == 1 else 's'}; `vup cache prune --orphaned` "
                     "frees them")
        lines += [row(reason, usage) for reason, usage in sorted(info.orphaned.items(), key=lambda kv: -kv[1].bytes)]
    else:
        lines.append("  orphaned: none")
    if info.running_jobs:
        lines.append(f"  in use by {len(info.running_jobs)} running job(s), never pruned: "
                     f"{human_bytes(info.in_use.bytes)} in {info.in_use.chunks} chunks")
        lines += [f"    {job}" for job in info.running_jobs]
    return lines


def _registered_name(workspace: Any, key: str) -> str | None:
    """The file name of the video registered under partition ``key``, if any."""
    try:
        data = json.loads((workspace.videos / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(data.get("name")) if isinstance(data, dict) and data.get("name") else None


def cmd_cache_prune(args: argparse.Namespace) -> int:
    from stages.store.budget import parse_budget, parse_duration
    from stages.store.cache import prune

    older = parse_duration(args.older_than, "--older-than") if args.older_than is not None else None
    workspace = _workspace(args)
    max_bytes = parse_budget(args.max_size, workspace.chunks, "--max-size") if args.max_size is not None else None
    if args.max_size is not None and max_bytes is None:
        raise SettingsError("cache: --max-size needs a size (e.g. 50G or 20%); to prune nothing, leave prune alone")
    note = ""
    if older is None and max_bytes is None and args.video is None and not args.orphaned:
        budget = _budget(workspace)
        if budget.max_bytes is None:
            raise SettingsError(f"cache: the size budget is off ({budget.source}); say what to prune: "
                                "--older-than 30d, --max-size 50G, --video KEY or --orphaned")
        max_bytes, note = budget.max_bytes, f"down to the size budget, {budget.describe()}: "
    result = prune(workspace.chunks, older_than=older, max_bytes=max_bytes, owner=args.video,
                   orphaned=args.orphaned, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"{note}{result.summary()}")
    return 0
