"""structlog: readable lines on a terminal, JSON lines everywhere else."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(*, json: bool | None = None) -> None:
    """Configure structlog and route the standard library's logging through it."""
    if json is None:
        json = not sys.stderr.isatty()
    level = getattr(logging, os.environ.get("CADENYA_SERVER_LOG_LEVEL", "INFO").upper(), 20)
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
