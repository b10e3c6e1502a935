"""`vup models`: list, info, download, verify, import and remove the models of the catalog and their weights."""

from __future__ import annotations

import argparse
import json
import sys

from stages.errors import SettingsError, StageError

_TASK_SHORT = {"super-resolution": "sr", "frame-interpolation": "vfi"}


def _human_size(size: int | None) -> str:
    from stages.store.diskspace import human_bytes

    return "-" if size is None else human_bytes(size)


def _models_store(args: argparse.Namespace, *, allow_download: bool = True):
    from stages.models.store import ModelStore

    return ModelStore(allow_download=allow_download, progress=not getattr(args, "quiet", False))


def _where(status) -> tuple[bool, str]:
    """(present on this machine, where its weights come or would come from) for `models list`."""
    if status.available and status.source != "download":
        return True, status.source
    if status.available:
        return False, "download"
    file = status.entry.file
    return False, "manual" if file is not None and file.manual_urls else "-"


def cmd_models_list(args: argparse.Namespace) -> int:
    rows = _models_store(args).list()
    if args.json:
        out = []
        for s in rows:
            present, where = _where(s)
            entry = s.entry
            out.append({
                "id": entry.id, "task": entry.task, "scale": entry.scale, "architecture": entry.architecture,
                "spandrel_arch": entry.spandrel_arch, "license": entry.license,
                "size": entry.file.size if entry.file else None, "sha256": entry.file.sha256 if entry.file else None,
                "present": present, "from": where, "user": entry.is_user, "available": s.available,
                "source": s.source, "path": str(s.path) if s.path else None, "reason": s.reason,
                "description": entry.description, "tags": list(entry.tags),
            })
        print(json.dumps(out, indent=2))
        return 0
    print(f"  {'id':26} {'task':4} {'scale':>5} {'architecture':15} {'licence':12} {'size':>8} {'present':7} "
          f"{'from':8} description")
    for s in rows:
        present, where = _where(s)
        entry = s.entry
        size = _human_size(entry.file.size if entry.file else None)
        print(f"{'*' if entry.is_user else ' '} {entry.id:26} {_TASK_SHORT.get(entry.task, entry.task):4} "
              f"{'x' + str(entry.scale):>5} {entry.architecture[:15]:15} {entry.license[:12]:12} {size:>8} "
              f"{'yes' if present else 'no':7} {where:8} {entry.description}")
    if any(s.entry.is_user for s in rows):
        print("* imported by you (`vup models import`); `vup models info ID` shows details")
    return 0


def cmd_models_info(args: argparse.Namespace) -> int:
    store = _models_store(args)
    entry = store.entry(args.id)
    status = store.status(entry.id)
    present, where = _where(status)
    record = store.user_record(entry.id)
    ncnn = store.ncnn_files(entry.id)
    file = entry.file
    sha256 = file.sha256 if file is not None else None
    if entry.is_user:
        sha_text = f"{sha256} (recorded at import)"
    elif sha256:
        sha_text = sha256
    else:
        sha_text = "unknown: verified by size + load check"
    data = {
        "id": entry.id, "description": entry.description, "task": entry.task, "architecture": entry.architecture,
        "spandrel_arch": entry.spandrel_arch, "scale": entry.scale, "native_scale": entry.native_scale,
        "family": entry.family, "license": entry.license, "tags": list(entry.tags), "origin": entry.origin,
        "filename": file.filename if file else None, "size": file.size if file else None, "sha256": sha256,
        "urls": list(file.urls) if file else [], "manual_urls": list(file.manual_urls) if file else [],
        "package": ({"pip": entry.package_source.pip_name, "param": entry.package_source.param,
                     "bin": entry.package_source.bin} if entry.package_source else None),
        "present": present, "from": where, "available": status.available, "source": status.source,
        "path": str(status.path) if status.path else None, "reason": status.reason,
        "ncnn": [str(p) for p in ncnn] if ncnn else None,
        "imported": ({"source": record.source, "source_sha256": record.source_sha256, "format": record.format,
                      "imported_at": record.imported_at} if record else None),
        "notes": entry.notes,
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    scale = f"x{entry.scale}"
    if entry.native_scale:
        scale += f" (a x{entry.native_scale} network, its output resized to x{entry.scale})"
    lines = [
        ("id", entry.id + ("  (imported by you)" if entry.is_user else "")),
        ("description", entry.description),
        ("task", entry.task),
        ("architecture", f"{entry.architecture} (spandrel: {entry.spandrel_arch})" if entry.spandrel_arch
         else f"{entry.architecture} (the project's own implementation)"),
        ("scale", scale),
        ("family", entry.family),
        ("licence", entry.license),
        ("tags", ", ".join(entry.tags)),
    ]
    if file is not None:
        size = f"{file.size} bytes ({_human_size(file.size)})" if file.size is not None else "unknown"
        lines += [("file", file.filename), ("size", size)]
    lines.append(("sha256", sha_text if file is not None else "- (package files only)"))
    for url in file.urls if file else ():
        lines.append(("url", url))
    for url in file.manual_urls if file else ():
        lines.append(("browser url", (f"{url} (a web page, not a direct download: save the file, then "
                                      "`vup models import FILE`)")))
    if entry.package_source is not None:
        lines.append(("package", (f"{entry.package_source.pip_name}: {entry.package_source.param}, "
                                  f"{entry.package_source.bin} (converted once on first use)")))
    if present:
        lines.append(("status", f"present ({where})"))
    elif status.available:
        lines.append(("status", f"not present; {status.reason}"))
    else:
        lines.append(("status", f"unavailable: {status.reason}"))
    if status.path is not None:
        lines.append(("path", str(status.path)))
    if ncnn:
        lines.append(("ncnn files", f"{ncnn[0]}, {ncnn[1]}"))
    if record is not None:
        lines.append(("imported from", f"{record.source} ({record.format}, {record.imported_at})"))
    lines.append(("notes", entry.notes or "-"))
    for name, value in lines:
        print(f"{name + ':':14} {value}")
    return 0


def cmd_models_download(args: argparse.Namespace) -> int:
    store = _models_store(args)
    if args.all and args.ids:
        raise SettingsError("models download: pass model ids or --all, not both")
    if not args.all and not args.ids:
        raise SettingsError("models download: name the model(s) to fetch, e.g. `vup models download "
                            "realesr-general-x4v3`, or pass --all")
    ids = [model_id for model_id, entry in store.catalog.items() if not entry.is_user] if args.all else args.ids
    for model_id in ids:
        store.entry(model_id)  # unknown ids fail before anything is fetched
    if len(ids) == 1 and not args.all:
        resolved = store.resolve(ids[0])
        print(f"{resolved.model_id}: {resolved.path} ({resolved.source})")
        return 0
    failed = 0
    for model_id in ids:
        entry = store.entry(model_id)
        file = entry.file
        if file is not None and not file.urls and file.manual_urls and not store.present(model_id):
            print(f"skipped {model_id}: no direct download; open {file.manual_urls[0]} in a browser, save the "
                  "file, then `vup models import FILE`")
            continue
        try:
            resolved = store.resolve(model_id)
        except StageError as exc:
            failed += 1
            print(f"FAILED  {model_id}: {exc}")
            continue
        print(f"{resolved.model_id}: {resolved.path} ({resolved.source})")
    return 1 if failed else 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    store = _models_store(args)
    ids = args.ids or [model_id for model_id in store.catalog if store.present(model_id)]
    for model_id in ids:
        store.entry(model_id)
    if not ids:
        print("nothing to verify: no model weights on this machine (`vup models download ID` fetches one)")
        return 0
    failed = total = 0
    for model_id in ids:
        for result in store.verify(model_id):
            total += 1
            failed += not result.ok
            where = f"  [{result.source}: {result.path}]" if result.path is not None else ""
            print(f"{'OK' if result.ok else 'FAILED':6}  {model_id:26}  {result.detail}{where}")
    print(f"{total - failed} OK, {failed} failed")
    return 1 if failed else 0


def cmd_models_import(args: argparse.Namespace) -> int:
    result = _models_store(args).import_model(args.path, model_id=args.id, description=args.description,
                                              license=args.license, force=args.force, bin_path=args.bin)
    entry = result.entry
    if result.builtin:
        print(f"recognised:   the file of the built-in model {entry.id} (checked against the catalog)")
    else:
        print(f"imported:     {entry.id}" + ("  (replaced the earlier import)" if result.replaced else ""))
    print(f"architecture: {result.architecture_name} ({entry.architecture}, spandrel id {entry.spandrel_arch})")
    print(f"scale:        x{entry.scale}" + (f" (a x{entry.native_scale} network resized)" if entry.native_scale
                                             else ""))
    print(f"size:         {result.size} bytes ({_human_size(result.size)})")
    print(f"sha256:       {result.sha256}")
    print(f"stored in:    {result.path}")
    if result.ncnn is not None:
        print(f"ncnn files:   {result.ncnn[0]}, {result.ncnn[1]}")
    print(f"licence:      {entry.license}")
    print(f"use it:       vup enhance VIDEO --model {entry.id} --scale {entry.scale}")
    return 0


def cmd_models_remove(args: argparse.Namespace) -> int:
    store = _models_store(args)
    plan = store.plan_removal(args.id)
    for path, why in plan.kept:
        print(f"kept:     {path} ({why})")
    if plan.empty:
        print(f"nothing to delete for {plan.model_id}: none of its files are in the cache ({store.cache_dir})")
        return 0
    count = f"{len(plan.files)} file{'s' if len(plan.files) != 1 else ''}"
    what = f"{plan.folder} ({count}, {_human_size(plan.size)})" if plan.folder else "no files"
    print(f"delete:   {what}" + (" and its entry in the user catalog" if plan.user else ""))
    if not args.yes:
        if not sys.stdin.isatty():
            raise SettingsError(f"models remove: not deleting {plan.model_id} without confirmation; input is not "
                                "a terminal, so pass --yes")
        try:
            answer = input(f"Delete {plan.model_id}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("cancelled: nothing deleted")
            return 0
    store.remove(plan)
    print(f"removed:  {plan.model_id}")
    return 0
