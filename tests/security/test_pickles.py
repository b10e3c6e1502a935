"""Model files never run code: a pickle whose unpickling would call ``os.system`` or write a file is refused with
UnsafeWeightsError by every loading path (SR loader, `vup models import`, RIFE, a cached download, a file in
VUP_MODELS_DIR), and the canary file it would create never appears. Weights-only checkpoints and safetensors keep
loading."""

from __future__ import annotations

import ast
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from hostile import RunsCommand, WritesFile
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

from orchestration.cli import main
from stages.errors import ModelError, UnsafeWeightsError
from stages.models.catalog import ModelEntry, ModelFile
from stages.models.rife.load import load_rife
from stages.models.safe_load import load_tensors
from stages.models.store import ModelStore

REPO = Path(__file__).resolve().parents[2]


def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).state_dict()


def _payloads(canary: Path) -> dict[str, object]:
    command = f"touch {canary}"
    return {
        "os.system": {"params": tiny_state(), "hook": RunsCommand(command)},
        "builtins.open": {**tiny_state(), "x": WritesFile(canary)},
    }


def write_evil(folder: Path, canary: Path) -> list[Path]:
    """Malicious files of every suffix and pickle flavour the loaders read."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for kind, payload in _payloads(canary).items():
        stem = kind.replace(".", "-")
        for suffix in (".pth", ".pt", ".ckpt", ".pkl"):
            path = folder / f"{stem}{suffix}"
            torch.save(payload, path)
            files.append(path)
        legacy = folder / f"{stem}-legacy.pth"
        torch.save(payload, legacy, _use_new_zipfile_serialization=False)
        files.append(legacy)
        for protocol in (2, pickle.HIGHEST_PROTOCOL):
            raw = folder / f"{stem}-raw{protocol}.pth"
            raw.write_bytes(pickle.dumps(payload, protocol=protocol))
            files.append(raw)
    scripted = folder / "torchscript.pt"
    network = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(network, torch.rand(1, 3, 8, 8)), scripted)  # TorchScript: code
    files.append(scripted)
    return files


@pytest.fixture
def evil(tmp_path: Path) -> tuple[list[Path], Path]:
    canary = tmp_path / "canary" / "PWNED"
    canary.parent.mkdir()
    files = write_evil(tmp_path / "evil", canary)
    assert not canary.exists()
    return files, canary


def _strictly_refused(path: Path, exc: BaseException) -> None:
    """Zip and legacy torch pickles naming a global, and TorchScript, are UnsafeWeightsError; raw pickles of other
    protocols are refused by the weights-only unpickler too (ModelError), whatever the reason it gives."""
    assert isinstance(exc, ModelError), exc
    if "-raw" not in path.name:
        assert isinstance(exc, UnsafeWeightsError), (path.name, exc)
        assert "refused" in str(exc) and "weights_only=False" not in str(exc), str(exc)


def test_every_malicious_file_is_refused_by_the_sr_loader(evil, tmp_path):
    files, canary = evil
    store = ModelStore(cache_dir=tmp_path / "cache", allow_download=False)
    for path in files:
        with pytest.raises(ModelError) as info:
            store.load(path)
        _strictly_refused(path, info.value)
        with pytest.raises(ModelError):
            ModelStore.load_descriptor(path)
        assert not canary.exists(), path


def test_safe_loader_refuses_and_never_runs_the_payload(evil):
    files, canary = evil
    for path in files:
        with pytest.raises(ModelError) as info:
            load_tensors(path)
        _strictly_refused(path, info.value)
    assert not canary.exists()


def test_rife_loader_refuses_them(evil):
    files, canary = evil
    for path in files:
        with pytest.raises(ModelError) as info:
            load_rife(path)
        _strictly_refused(path, info.value)
    assert not canary.exists()


def test_models_import_refuses_them_in_one_line(evil, tmp_path, monkeypatch, capsys):
    files, canary = evil
    cache = tmp_path / "cache"
    monkeypatch.setenv("VUP_CACHE_DIR", str(cache))
    for path in files:
        code = main(["models", "import", str(path), "--id", "evil-model", "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 2, path
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        if path.suffix == ".pkl":
            assert "unsupported suffix" in err, err
        elif "-raw" not in path.name:
            assert "refused" in err, err
    assert not canary.exists()
    assert not (cache / "user" / "evil-model").exists()
    assert "evil-model" not in ModelStore(cache_dir=cache).catalog


def test_a_malicious_file_in_the_models_dir_or_the_cache_is_refused(evil, tmp_path):
    files, canary = evil
    payload = next(p for p in files if p.name == "os-system.pth")
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "toy-x2.pth").write_bytes(payload.read_bytes())
    entry = ModelEntry(id="toy-x2", task="super-resolution", architecture="SRVGGNetCompact", scale=2,
                       family="toy", file=ModelFile("toy-x2.pth", (), None, None), license="MIT",
                       description="test", tags=(), spandrel_arch="Compact")
    store = ModelStore(cache_dir=tmp_path / "cache", models_dir=models_dir, allow_download=False,
                       catalog={"toy-x2": entry})
    with pytest.raises(UnsafeWeightsError):
        store.load("toy-x2")
    # a cached download whose sha256 the catalog does not know is load-checked before it is used: refused too
    cached = tmp_path / "cache" / "toy-x2" / "toy-x2.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(payload.read_bytes())
    (models_dir / "toy-x2.pth").unlink()
    with pytest.raises(ModelError):
        store.load("toy-x2")
    assert not cached.exists(), "a cached file that fails the load check is deleted"
    assert not canary.exists()


def test_a_malicious_download_is_refused_and_deleted(evil, tmp_path, http_server):
    files, canary = evil
    payload = next(p for p in files if p.name == "builtins-open.pth").read_bytes()
    http_server.files["toy.pth"] = payload
    entry = ModelEntry(id="toy-x2", task="super-resolution", architecture="SRVGGNetCompact", scale=2,
                       family="toy", file=ModelFile("toy.pth", (http_server.url("toy.pth"),), len(payload), None),
                       license="MIT", description="test", tags=(), spandrel_arch="Compact")
    store = ModelStore(cache_dir=tmp_path / "cache", progress=False, catalog={"toy-x2": entry})
    with pytest.raises(ModelError, match="not a usable model"):
        store.load("toy-x2")
    assert not (tmp_path / "cache" / "toy-x2" / "toy.pth").exists()
    assert not canary.exists()


def test_weights_only_checkpoints_and_safetensors_still_load(tmp_path, monkeypatch):
    state = tiny_state()
    plain, wrapped, tensors, pt = (tmp_path / "plain.pth", tmp_path / "wrapped.ckpt", tmp_path / "t.safetensors",
                                   tmp_path / "plain.pt")
    torch.save(state, plain)
    torch.save({"params_ema": state}, wrapped)
    torch.save(state, pt)
    save_file(state, str(tensors))
    store = ModelStore(cache_dir=tmp_path / "cache", allow_download=False)
    for path in (plain, wrapped, tensors, pt):
        loaded = store.load(path)
        assert loaded.scale == 2 and loaded.architecture_id == "Compact", path
    monkeypatch.setenv("VUP_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["models", "import", str(tensors), "--id", "tiny-st", "-q"]) == 0
    assert ModelStore(cache_dir=tmp_path / "cache").load("tiny-st").scale == 2


# ------------------------------------------------------------------------------------------------ the source


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            parts = []
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                parts.append(func.id)
            yield ".".join(reversed(parts)), node


# Unpickling the project does on purpose, each with why it is safe. Anything else is a failure.
TRUSTED_UNPICKLING = {
    # the run-scoped IO manager reads back the manifests the pipeline itself pickled under
    # <workspace>/dagster-storage (what Dagster's own FilesystemIOManager does); never a file a user brings
    ("orchestration/resources/io_managers.py", "pickle.load"),
}


def test_no_loader_in_the_source_can_unpickle_code():
    """Every torch.load says weights_only=True; no pickle.load, np.load(allow_pickle=True), torch.jit.load or
    spandrel load_from_file (its own unpickler, and TorchScript for .pt), except :data:`TRUSTED_UNPICKLING`."""
    problems = []
    for package in ("stages", "orchestration", "ui", "benchmarks"):
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            where = path.relative_to(REPO)
            for name, node in _calls(tree):
                keywords = {k.arg: k.value for k in node.keywords}
                if name.endswith("torch.load"):
                    value = keywords.get("weights_only")
                    if not (isinstance(value, ast.Constant) and value.value is True):
                        problems.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
                elif name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "dill.load",
                              "joblib.load", "torch.jit.load", "jit.load", "shelve.open", "marshal.load",
                              "marshal.loads") or name.endswith(("load_from_file", "load_state_dict_from_file")):
                    if (str(where), name) not in TRUSTED_UNPICKLING:
                        problems.append(f"{where}:{node.lineno}: {name} can run code from the file")
                elif name.endswith(("np.load", "numpy.load")):
                    value = keywords.get("allow_pickle")
                    if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                        problems.append(f"{where}:{node.lineno}: np.load with allow_pickle")
    assert not problems, "\n".join(problems)


def test_torch_default_is_not_relied_on(evil, monkeypatch):
    """Even with torch's default switched back to weights_only=False, nothing runs."""
    files, canary = evil
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    for path in files:
        with pytest.raises(ModelError):
            load_tensors(path)
    assert not canary.exists()
