"""Logging: one line per event from every source (the app, uvicorn, Alembic), with a
timestamp, a level and the request id; JSON lines, or console lines on a terminal.

structlog's events go through the standard library's handlers, so one formatter
(structlog's ProcessorFormatter) renders both kinds. `dict_config` is that setup as
`logging.config.dictConfig` takes it, and as uvicorn applies it in every worker.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]
# Loggers that bring their own handlers or levels: theirs go, ours (the root's) serve.
_FOREIGN = ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic")


def _add_pid(_logger: Any, _method: str, event: structlog.types.EventDict) -> Any:
    # Which worker of `serve --workers N` it was.
    event["pid"] = os.getpid()
    return event


def _shared() -> list[structlog.types.Processor]:
    """What every event gets, whether structlog's or the standard library's."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_pid,
    ]


def route_structlog() -> None:
    """structlog's events to the standard library's handlers, filtered by its levels."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def formatter(*, json: bool) -> logging.Formatter:
    """Renders any record, structlog's or not, as one JSON or console line."""
    renderer: list[structlog.types.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if json
        else [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )


def wants_json(log_format: LogFormat) -> bool:
    return log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())


def dict_config(*, level: str, json: bool) -> dict[str, Any]:
    """The standard library's setup; plain data, so uvicorn can hand it to its workers."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {"()": f"{__name__}.formatter", "json": json}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            name: {"level": "NOTSET", "handlers": [], "propagate": True} for name in _FOREIGN
        },
    }


def configure(*, level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """This process's logging: structlog's and the standard library's, alike."""
    route_structlog()
    logging.config.dictConfig(dict_config(level=level, json=wants_json(log_format)))
