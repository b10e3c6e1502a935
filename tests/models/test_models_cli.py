"""`vup models list|info|download|verify|import|remove` through the CLI entry point, in a private cache."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import torch

from orchestration.cli import main
from stages.models import store as store_module
from stages.models import store_inventory as inventory_module
from stages.models import store_sources as sources_module
from stages.models.catalog import CATALOG, ModelEntry, ModelFile


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private model cache; no VUP_MODELS_DIR; package models look uninstalled (verify stays fast)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("VUP_CACHE_DIR", str(folder))
    monkeypatch.delenv("VUP_MODELS_DIR", raising=False)
    for module in (sources_module, inventory_module):
        monkeypatch.setattr(module, "_package_files", lambda source: f"package {source.pip_name} is not installed")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    return folder


@pytest.fixture
def tiny_file(tmp_path: Path, tiny_compact) -> Path:
    path = tmp_path / "Tiny-Anime.pth"
    torch.save(tiny_compact(num_feat=8, num_conv=2, scale=2), path)
    return path


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["models", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def _one_line_error(err: str) -> None:
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_import_list_info_verify_remove(cache: Path, tiny_file: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, "import", str(tiny_file), "--name", "My anime test model", "--license", "MIT")
    sha = hashlib.sha256(tiny_file.read_bytes()).hexdigest()
    stored = cache / "user" / "tiny-anime" / "tiny-anime.pth"
    assert code == 0
    for expected in ("imported:     tiny-anime", "architecture: RealESRGAN Compact (SRVGGNetCompact",
                     "scale:        x2", f"sha256:       {sha}", f"stored in:    {stored}",
                     f"size:         {tiny_file.stat().st_size} bytes"):
        assert expected in out

    code, out, err = _run(capsys, "import", str(tiny_file))
    assert code == 2 and "already exists" in err and "--force" in err
    _one_line_error(err)

    code, out, _ = _run(capsys, "list")
    assert code == 0
    user_line = next(line for line in out.splitlines() if " tiny-anime " in line)
    assert user_line.startswith("* ") and " x2 " in user_line and " yes " in user_line and " user " in user_line
    assert "My anime test model" in user_line and "MIT" in user_line
    drive_line = next(line for line in out.splitlines() if " realplksr-gan-x4 " in line)
    assert " no " in drive_line and " manual " in drive_line
    assert "* imported by you" in out
    code, out, _ = _run(capsys, "list", "--json")
    rows = {row["id"]: row for row in json.loads(out)}
    assert set(CATALOG) < set(rows)
    assert rows["tiny-anime"]["user"] and rows["tiny-anime"]["present"] and rows["tiny-anime"]["from"] == "user"
    assert rows["swinir-real-m-x4-gan"]["from"] == "download" and not rows["swinir-real-m-x4-gan"]["present"]
    assert rows["swinir-real-m-x4-gan"]["spandrel_arch"] == "SwinIR"

    code, out, _ = _run(capsys, "info", "tiny-anime")
    assert code == 0 and "(imported by you)" in out and f"{sha} (recorded at import)" in out
    assert f"path:          {stored}" in out and f"imported from: {tiny_file.resolve()}" in out
    code, out, _ = _run(capsys, "info", "tiny-anime", "--json")
    info = json.loads(out)
    assert info["origin"] == "user" and info["sha256"] == sha and info["imported"]["format"] == "pth"

    code, out, _ = _run(capsys, "verify")
    assert code == 0 and out.splitlines()[0].startswith("OK      tiny-anime") and "1 OK, 0 failed" in out

    blob = bytearray(stored.read_bytes())
    blob[-7] ^= 0xFF
    stored.write_bytes(bytes(blob))
    code, out, _ = _run(capsys, "verify", "tiny-anime")
    assert code == 1 and out.startswith("FAILED  tiny-anime") and "recorded at import" in out

    code, out, err = _run(capsys, "remove", "tiny-anime")
    assert code == 2 and "pass --yes" in err and stored.exists()
    _one_line_error(err)
    code, out, _ = _run(capsys, "remove", "tiny-anime", "--yes")
    assert code == 0 and f"delete:   {stored.parent} (1 file," in out and "removed:  tiny-anime" in out
    assert not stored.parent.exists() and tiny_file.is_file()
    code, out, _ = _run(capsys, "list")
    assert "tiny-anime" not in out
    code, out, _ = _run(capsys, "verify")
    assert code == 0 and out.startswith("nothing to verify")


def test_remove_asks_on_a_terminal(cache: Path, tiny_file: Path, capsys: pytest.CaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(capsys, "import", str(tiny_file), "--id", "mine")[0] == 0

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    code, out, _ = _run(capsys, "remove", "mine")
    assert code == 0 and "cancelled: nothing deleted" in out and (cache / "user" / "mine").is_dir()
    code, out, _ = _run(capsys, "remove", "mine")
    assert code == 0 and "removed:  mine" in out and not (cache / "user" / "mine").exists()
    code, out, _ = _run(capsys, "remove", "realesr-general-x4v3")
    assert code == 0 and out.startswith("nothing to delete for realesr-general-x4v3")


def test_import_rejections_are_one_line(cache: Path, tmp_path: Path, tiny_compact, ncnn_writer,
                                        capsys: pytest.CaptureFixture) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x02not a pickle at all")
    param, weights = ncnn_writer(tiny_compact(), tmp_path, "pair", scale=2)
    weights.unlink()
    cases = [(["import", str(junk)], "cannot load"), (["import", str(tmp_path / "a.onnx")], "does not exist"),
             (["import", str(param)], "--bin"), (["import", str(param.with_suffix(".txt"))], "does not exist"),
             (["info", "nope"], "unknown model id 'nope'"), (["verify", "nope"], "unknown model id"),
             (["remove", "nope", "--yes"], "unknown model id"), (["download"], "--all")]
    (tmp_path / "a.txt").write_text("x")
    cases.append((["import", str(tmp_path / "a.txt")], "unsupported suffix"))
    for argv, expected in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        _one_line_error(err)
        assert expected in err, (argv, err)


def test_ncnn_import_through_the_cli(cache: Path, tmp_path: Path, tiny_rrdb, ncnn_export_writer,
                                     capsys: pytest.CaptureFixture) -> None:
    param, _ = ncnn_export_writer(tiny_rrdb(num_feat=8, num_block=1), tmp_path, "4x-Tiny RRDB")
    code, out, _ = _run(capsys, "import", str(param))
    folder = cache / "user" / "4x-tiny-rrdb"
    assert code == 0 and "imported:     4x-tiny-rrdb" in out and "(RRDBNet, spandrel id ESRGAN)" in out
    assert f"ncnn files:   {folder / '4x-tiny-rrdb.param'}, {folder / '4x-tiny-rrdb.bin'}" in out
    code, out, _ = _run(capsys, "verify", "4x-tiny-rrdb")
    assert code == 0 and "(and its ncnn .param/.bin)" in out


def test_download_and_unknown_checksum(cache: Path, tiny_file: Path, http_server, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(capsys, "download", "realplksr-gan-x4")
    assert code == 2 and "no direct download" in err and "vup models import FILE" in err
    _one_line_error(err)
    code, _, err = _run(capsys, "download", "--all", "realesr-general-x4v3")
    assert code == 2 and "not both" in err

    data = tiny_file.read_bytes()
    http_server.files["tiny.pth"] = data
    unpinned = ModelEntry(
        id="tiny-unpinned", task="super-resolution", architecture="SRVGGNetCompact", scale=2, family="tiny",
        file=ModelFile("tiny.pth", (http_server.url("tiny.pth"),), len(data), None), license="MIT",
        description="Tiny test model, checksum unknown.", tags=("fast",), notes="sha256 unknown.")
    drive = ModelEntry(
        id="tiny-drive", task="super-resolution", architecture="SRVGGNetCompact", scale=2, family="tiny-drive",
        file=ModelFile("tiny-drive.pth", (), None, "0" * 64, manual_urls=("https://drive.google.com/file/d/x/view",)),
        license="MIT", description="Tiny, Drive only.", tags=("fast",), notes="Google Drive only.")
    monkeypatch.setattr(store_module, "CATALOG", {e.id: e for e in (unpinned, drive)})

    code, out, _ = _run(capsys, "info", "tiny-unpinned")
    assert code == 0 and "sha256:        unknown: verified by size + load check" in out
    assert "status:        not present; not on this machine yet" in out
    code, out, _ = _run(capsys, "download", "--all", "-q")
    assert code == 0
    assert f"tiny-unpinned: {cache / 'tiny-unpinned' / 'tiny.pth'} (download)" in out
    assert "skipped tiny-drive: no direct download" in out
    code, out, _ = _run(capsys, "verify")
    assert code == 0 and "OK      tiny-unpinned" in out and "sha256 unknown: verified by size + load check" in out
    code, out, _ = _run(capsys, "download", "tiny-unpinned")
    assert code == 0 and out.strip().endswith("(cache)")
