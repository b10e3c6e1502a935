"""stages/ is plain Python: importing all of it loads no Dagster, Gradio, orchestration or ui module."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_stages_import_no_orchestration():
    modules = [m.name for m in pkgutil.walk_packages([str(ROOT / "stages")], prefix="stages.")]
    assert "stages.media.probe" in modules and "stages.ops.upscale.engine" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'gradio', 'orchestration', 'ui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
