"""The bad-input corpus of issue 6, case by case, through the paths a user takes.

The corpus is generated (never committed) once per module by ``benchmarks.badinput.generate_corpus``. Every case
is either processed (the output is probed and checked) or refused before any work with one line that names the
problem and the fix; never a partial file at the output path, never a stack trace. ``TABLE`` is the test table:
every case and its expected outcome (the generator's own ``expect`` must agree with it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dagster import DagsterInstance

from benchmarks.badinput import (
    BASE_ARGS,
    Case,
    check_sidecar,
    chunk_files,
    generate_corpus,
    leftovers,
    verify_output,
)
from orchestration.cli import main
from orchestration.resources.workspace import Workspace

# case -> expected outcome, and what the case stands for in the list
TABLE: dict[str, tuple[str, str]] = {
    "good": ("process", "control: a good clip with audio"),
    "missing-file": ("refuse", "a path that does not exist"),
    "zero-bytes": ("refuse", "zero bytes"),
    "random-bytes": ("refuse", "random bytes named .mp4"),
    "truncated-mdat": ("refuse", "an MP4 cut in the middle of its media data"),
    "missing-moov": ("refuse", "an MP4 whose index (moov) is missing"),
    "mkv-named-mp4": ("process", "a container whose extension lies"),
    "audio-only": ("refuse", "audio only"),
    "still-image": ("refuse", "a still image"),
    "size-1x1": ("refuse", "1x1"),
    "odd-321x181": ("process", "odd sizes"),
    "h264-422": ("process", "4:2:2"),
    "hevc-422-10bit": ("process", "4:2:2 and 10-bit HEVC"),
    "hevc-10bit-to-h265": ("process", "10-bit HEVC, kept 10-bit HEVC"),
    "interlaced": ("process", "interlaced"),
    "rotation-90": ("process", "rotation metadata"),
    "vfr-screen": ("process", "VFR (screen-recording style)"),
    "fps-0.5": ("process", "0.5 fps"),
    "fps-240": ("process", "240 fps"),
    "zero-decodable-frames": ("refuse", "a stream with zero decodable frames"),
    "bitflip-middle": ("process", "bit-flipped frames in the middle of a good file"),
    "two-video-streams": ("process", "several video streams"),
    "cover-art": ("process", "cover art next to the real video"),
    "two-audio-two-subtitles": ("process", "several audio and subtitle tracks"),
    "huge-declared-resolution": ("refuse", "a huge declared resolution"),
    "settings-unknown-key": ("refuse", "settings: unknown keys"),
    "settings-wrong-type": ("refuse", "settings: wrong types"),
    "settings-negative-scale": ("refuse", "settings: a negative scale"),
    "settings-fps-above-120": ("refuse", "settings: an fps above 120"),
    "settings-output-outside": ("refuse", "settings: an output path outside the workspace"),
    "settings-output-absolute": ("refuse", "settings: an absolute output path outside the workspace"),
    "settings-crf-out-of-range": ("refuse", "settings: an impossible value"),
    "settings-not-json": ("refuse", "settings: not JSON at all"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    cases = generate_corpus(tmp_path_factory.mktemp("badinput"))
    return {case.name: case for case in cases}


def test_the_table_lists_every_case(corpus):
    assert len(corpus) >= 25
    assert {name: case.expect for name, case in corpus.items()} == {name: row[0] for name, row in TABLE.items()}
    for case in corpus.values():
        assert case.path.name, case.name
        if case.expect == "refuse":
            assert case.message_contains, f"{case.name}: a refusal must say which words it expects"
        elif case.kind == "video":
            assert case.check is not None and case.path.is_file(), case.name


def _no_trace(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and "Stack Trace" not in text, text[-3000:]


def _enhance(case: Case, workspace: Workspace, output: Path, capsys) -> tuple[int, str, str]:
    code = main(["enhance", str(case.path), "-o", str(output), "--workspace", str(workspace.root), *BASE_ARGS,
                 *case.args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _refused_video(case: Case, workspace: Workspace, tmp_path: Path, capsys, caplog) -> None:
    output = tmp_path / "out" / case.output
    output.parent.mkdir()
    with caplog.at_level(logging.WARNING):
        code, out, err = _enhance(case, workspace, output, capsys)
    _no_trace(out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and not out.strip(), err
    assert lines[0].startswith("error: "), lines[0]
    for words in case.message_contains:
        assert words in lines[0], lines[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a refusal prints nothing else"
    assert not output.exists()
    assert leftovers(output) == []
    assert chunk_files(workspace.root) == [], "work was done before the refusal"
    assert not any(workspace.videos.iterdir()), "the video was registered before the refusal"
    assert DagsterInstance.get().get_runs_count() == 0, "a Dagster run was started"


def _refused_settings(case: Case, workspace: Workspace) -> None:
    requested, reason = check_sidecar(case, workspace.root)
    assert not requested, "the inbox requested a run"
    assert len(reason.splitlines()) == 1, reason
    for words in case.message_contains:
        assert words in reason, reason
    video = workspace.inbox / f"{case.name}.mp4"
    assert not video.exists(), "the video stayed in the inbox"
    assert (workspace.inbox_failed / video.name).is_file()
    assert (workspace.inbox_failed / f"{case.name}.json").is_file(), "the sidecar goes with it, to be fixed"
    assert not list(workspace.outputs.rglob("*.mp4"))
    assert chunk_files(workspace.root) == []


def _processed(case: Case, workspace: Workspace, tmp_path: Path, capsys, caplog) -> None:
    output = tmp_path / "out" / case.output
    output.parent.mkdir()
    with caplog.at_level(logging.INFO):
        code, out, err = _enhance(case, workspace, output, capsys)
    _no_trace(out, err)
    assert code == 0, err[-3000:]
    assert f"output:   {output.resolve()}" in out
    assert output.is_file()
    assert leftovers(output) == [], "temporary or partial files were left next to the output"
    problems = verify_output(case, output)
    assert not problems, f"{case.name}: {problems}"
    assert case.check is not None
    if case.check.warning:
        logged = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
        assert case.check.warning in logged, f"the run does not say {case.check.warning!r}"


@pytest.mark.parametrize("name", list(TABLE))
def test_case(name, corpus, workspace, tmp_path, capsys, caplog):
    case = corpus[name]
    if case.expect == "refuse" and case.kind == "settings":
        _refused_settings(case, workspace)
    elif case.expect == "refuse":
        _refused_video(case, workspace, tmp_path, capsys, caplog)
    else:
        _processed(case, workspace, tmp_path, capsys, caplog)
