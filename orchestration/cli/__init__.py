"""The `vup` command line (enhance, produce, reframe, models, bench, serve, dev...): `commands` builds the parser
and runs each command; `enhance`, `production` and `models` hold the commands, `common` what they share."""

from orchestration.cli.commands import main

__all__ = ["main"]
