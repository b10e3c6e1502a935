"""Temporal coherence is on by default everywhere a default is set (auto, which resolves to flow), and off is one
flag away: the CLI, the run config and request, the inbox, the saved settings and the web page."""

from __future__ import annotations

from orchestration.cli.commands import build_parser
from orchestration.graphs.enhance_steps import enhance_run_config
from orchestration.launch.options import DEFAULT_SETTINGS
from orchestration.launch.request import EnhanceRequest
from orchestration.resources.config import TemporalConfig
from orchestration.resources.workspace import Workspace
from orchestration.sensors.inbox import build_request
from stages.ops.cohere.temporal import TemporalSettings, choose_method
from ui.choices import PageChoices


def test_cli_defaults_to_auto_and_none_is_one_flag_away():
    parser = build_parser()
    assert parser.parse_args(["enhance", "in.mp4"]).temporal == "auto"
    assert parser.parse_args(["enhance", "in.mp4", "--temporal", "none"]).temporal == "none"


def test_run_config_request_and_settings_default_to_auto(tmp_path):
    assert TemporalConfig().method == "auto" == TemporalSettings().method
    assert TemporalConfig().to_settings().method == "auto"
    assert EnhanceRequest(input=tmp_path / "in.mp4").temporal.method == "auto"
    assert enhance_run_config()["ops"]["cohere"]["config"]["method"] == "auto"
    assert DEFAULT_SETTINGS["temporal"] == "auto"
    assert choose_method(TemporalConfig().method, "cpu", 1920, 1080, 8 << 30)[0] == "flow"


def test_inbox_without_a_temporal_key_gets_auto_and_can_turn_it_off(tmp_path):
    workspace = Workspace(tmp_path / "ws").ensure()
    video = tmp_path / "clip.mp4"
    assert build_request(workspace, video, {}, "p1").temporal.method == "auto"
    assert build_request(workspace, video, {"temporal": "none"}, "p1").temporal.method == "none"


def test_page_defaults_to_auto():
    assert PageChoices(model=None).temporal == "auto"
    assert PageChoices(model=None, temporal="").request_choices()["temporal"] == "auto"
    assert PageChoices(model=None, temporal="none").request_choices()["temporal"] == "none"
