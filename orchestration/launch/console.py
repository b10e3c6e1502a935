"""The console logger of every job: Dagster's coloured console logger without stack traces.

A failed step's record carries the whole Python traceback. On a terminal (``vup enhance``, ``vup serve``'s log)
the user needs the one line that says what failed and what to do; the full error stays in the run's event log,
where the Dagster UI shows it. So each record is cut to its first line before it is printed.
"""

from __future__ import annotations

import logging

from dagster import Field, logger
from dagster._core.utils import coerce_valid_log_level
from dagster._utils.log import create_console_logger


def first_line_only(record: logging.LogRecord) -> bool:
    """A logging filter: keep the record, cut to the first line of its message (tracebacks follow that line)."""
    message = record.getMessage()
    head = message.split("\n", 1)[0].rstrip(": ")
    if head != message:
        record.msg, record.args = head, None
    return True


@logger(
    Field({"log_level": Field(str, is_required=False, default_value="INFO"),
           "name": Field(str, is_required=False, default_value="dagster"),
           # the CLI prints the run's error itself, as one line, so it leaves out the engine's error records
           "skip_errors": Field(bool, is_required=False, default_value=False)}),
    description="Dagster's coloured console logger, one line per record (no stack traces; the UI has them).",
)
def console_logger(init_context) -> logging.Logger:
    log = create_console_logger(init_context.logger_config["name"],
                                coerce_valid_log_level(init_context.logger_config["log_level"]))
    for handler in log.handlers:
        handler.addFilter(first_line_only)
        if init_context.logger_config["skip_errors"]:
            handler.addFilter(lambda record: record.levelno < logging.ERROR)
    return log
