"""The page's codec choice: every codec of `vup enhance` is offered, a codec its container cannot hold is refused
with what to choose, and the right container goes into the request."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestration.launch.options import build_ui_request
from orchestration.resources.workspace import Workspace
from stages.errors import SettingsError
from stages.media.codecs import OUTPUT_CODECS
from ui import app as page
from ui.choices import CODECS, container_for


def test_every_codec_is_offered_with_its_container(tmp_path: Path, tiny_clip: Path) -> None:
    assert set(CODECS) == set(OUTPUT_CODECS)
    workspace = Workspace(tmp_path / "workspace")
    upload = page.inspect_file(workspace, tiny_clip).upload
    assert upload is not None
    base = dataclasses.replace(page.PageChoices(None), scale=2).request_choices()
    with pytest.raises(SettingsError, match="ui: ProRes 422 HQ cannot go in mp4; choose the container mov"):
        build_ui_request(workspace, upload, {**base, "codec": "prores", "container": "mp4"})
    # switching the codec moves an mp4 container to the codec's own when mp4 cannot hold it (AV1 can)
    expected = {"prores": "mov", "prores4444": "mov", "av1": "mp4", "ffv1": "mkv"}
    for codec, container in expected.items():
        assert container_for(codec, "mp4") == container
        request = build_ui_request(workspace, upload, {**base, "codec": codec, "container": container})
        assert request.encode.codec == codec and request.output.suffix == f".{container}"
