"""`vup enhance --codec prores` without an output name: the enhance job writes the default output in the codec's own
container (MOV), probed as ProRes 422 HQ with the source's audio."""

from __future__ import annotations

from pathlib import Path

import av

from orchestration.cli import main
from stages.media.probe import probe_video


def test_the_default_output_takes_the_codecs_container(workspace, tiny_clip: Path, capsys) -> None:
    assert main(["enhance", str(tiny_clip), "--scale", "1", "--codec", "prores", "-q"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("output:"))
    output = Path(line.split(None, 1)[1])
    assert output.name == "tiny_enhanced.mov" and output.is_file()
    info = probe_video(output)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("prores", "yuv422p10le", 64, 48)
    assert info.frame_count == probe_video(tiny_clip).frame_count and len(info.audio_streams) == 1
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.profile == "HQ"
