"""No shell anywhere: every external tool (ffmpeg, dagster, compilers...) is started with an argument list.

An audit of the source by its syntax tree, so it also covers code no test runs: ``shell=True``, ``os.system``,
``os.popen``, ``subprocess.getoutput`` / ``getstatusoutput``, ``asyncio.create_subprocess_shell`` and a command
given as a string (literal, f-string, concatenation, ``" ".join(...)``, ``shlex.join(...)``, ``.format(...)``)
to ``subprocess.run`` / ``Popen`` / ``call`` / ``check_call`` / ``check_output`` or to ``run_ffmpeg`` are failures.
A command held in a variable is followed to the assignments of that variable in the same function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from stages.media.ffmpeg import run_ffmpeg

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("stages", "orchestration", "ui", "benchmarks")
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("asyncio", "create_subprocess_shell"), ("os", "popen2"), ("os", "popen3"), ("os", "popen4")}
COMMAND_CALLS = {"run", "Popen", "call", "check_call", "check_output"}


def _sources() -> list[Path]:
    files = sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))
    assert len(files) > 20, "the audit found almost no source files; did the layout change?"
    return files


def _dotted(node: ast.AST) -> tuple[str, ...]:
    """``a.b.c`` as ("a", "b", "c"); () for anything that is not a plain dotted name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return tuple(reversed(parts))
    return ()


def _stringy(node: ast.AST) -> bool:
    """An expression that evaluates to a string (as opposed to an argument list)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (str, bytes))
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _stringy(node.left) or _stringy(node.right)
    if isinstance(node, ast.Call):
        name = _dotted(node.func)
        if name in (("str",), ("shlex", "join"), ("shlex", "quote")):
            return True
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("join", "format") \
                and _stringy(node.func.value):
            return True
    return False


class _Audit(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self.subprocess_names: set[str] = set()  # from subprocess import run, Popen
        self.scopes: list[ast.AST] = []

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(REPO)}:{node.lineno}"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "subprocess":
            for alias in node.names:
                if alias.name in COMMAND_CALLS:
                    self.subprocess_names.add(alias.asname or alias.name)
                if alias.name in ("getoutput", "getstatusoutput"):
                    self.problems.append(f"{self.where(node)}: imports subprocess.{alias.name} (runs a shell)")
        if node.module == "os":
            for alias in node.names:
                if alias.name in ("system", "popen"):
                    self.problems.append(f"{self.where(node)}: imports os.{alias.name} (runs a shell)")
        self.generic_visit(node)

    def _scoped(self, node: ast.AST) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Module = _scoped

    def _assigned(self, name: str) -> list[ast.AST]:
        scope = self.scopes[-1] if self.scopes else None
        values: list[ast.AST] = []
        for node in ast.walk(scope) if scope is not None else ():
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                targets = [node.target]
            else:
                continue
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                values.append(node.value)
        return values

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                self.problems.append(f"{self.where(node)}: {'.'.join(name) or 'a call'}(shell=...) runs a shell")
        if name[-2:] in SHELL_CALLS:
            self.problems.append(f"{self.where(node)}: {'.'.join(name)} runs a shell")
        is_command = (len(name) >= 2 and name[-2] == "subprocess" and name[-1] in COMMAND_CALLS) or \
            (len(name) == 1 and name[0] in self.subprocess_names) or name[-1:] == ("run_ffmpeg",)
        if is_command:
            first = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg in ("args", "command")), None)
            if first is not None:
                candidates = [first]
                if isinstance(first, ast.Name):
                    candidates += self._assigned(first.id)
                for candidate in candidates:
                    if _stringy(candidate):
                        self.problems.append(f"{self.where(node)}: {'.'.join(name)} is given a command string; "
                                             "pass an argument list")
                        break
        self.generic_visit(node)


def _audit(path: Path, source: str | None = None) -> list[str]:
    audit = _Audit(path)
    audit.visit(ast.parse(source if source is not None else path.read_text(encoding="utf-8"), str(path)))
    return audit.problems


def test_no_shell_and_no_command_strings_in_the_source():
    problems = [problem for path in _sources() for problem in _audit(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("snippet", [
    "import subprocess\nsubprocess.run('ls -l', check=True)",
    "import subprocess\nsubprocess.run(['ls'], shell=True)",
    "import subprocess\nsubprocess.Popen(f'ffmpeg -i {x}')",
    "import subprocess\ndef f(x):\n    cmd = 'ffmpeg -i ' + x\n    subprocess.check_output(cmd)",
    "import subprocess, shlex\nsubprocess.call(shlex.join(['a', 'b']))",
    "import subprocess\nsubprocess.run(' '.join(['a', 'b']))",
    "from subprocess import run\nrun('ls')",
    "import os\nos.system('ls')",
    "import os\nos.popen('ls')",
    "import subprocess\nsubprocess.getoutput('ls')",
    "from subprocess import getstatusoutput",
    "import asyncio\nasyncio.create_subprocess_shell('ls')",
    "from stages.media.ffmpeg import run_ffmpeg\nrun_ffmpeg('-i x.mp4 y.mp4')",
])
def test_the_audit_catches_each_pattern(snippet):
    assert _audit(REPO / "stages" / "example.py", snippet), snippet


@pytest.mark.parametrize("snippet", [
    "import subprocess\nsubprocess.run(['ls', '-l'], check=True, shell=False)",
    "import subprocess\ndef f(x):\n    cmd = [x, '-version']\n    cmd += ['-y']\n    subprocess.run(cmd)",
    "import subprocess\nsubprocess.Popen([exe, *args], stdout=subprocess.PIPE)",
])
def test_the_audit_accepts_argument_lists(snippet):
    assert not _audit(REPO / "stages" / "example.py", snippet)


def test_run_ffmpeg_refuses_a_command_string():
    with pytest.raises(TypeError, match="argument list"):
        run_ffmpeg("-i in.mp4 out.mp4")  # type: ignore[arg-type]
