"""The `vup` command line (enhance, produce, reframe, models, bench, serve, dev...): `commands` builds the parser
and runs each command; `enhance`, `production`, `models` and `cache` hold the commands, `common` what they share."""

from orchestration.cli.commands import main

__all__ = ["main"]
