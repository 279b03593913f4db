"""Structured JSON logs through one redaction processor (SPEC §9).

``configure_logging(settings)`` is called once at app start and at CLI start. structlog events and
stdlib records (uvicorn, httpx, SQLAlchemy, anything else) end up in the same
``ProcessorFormatter``, whose chain holds the single ``redact_event`` processor, so nothing
reaches a handler unredacted. Output: JSON lines on stderr, and a rotating file when
``VB_LOG_FILE`` is set (``VB_LOG_MAX_BYTES``, default 10 MB; ``VB_LOG_BACKUPS`` old files).

``ECW_LOG_LEVEL=DEBUG`` also logs each hub request and response (``api.request_log``), with
bodies passed through the same redaction. Libraries that would log SQL parameters or raw
connection traffic stay at WARNING/INFO even then: their DEBUG output is PHI by construction.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from vitalbridge.observability.redaction import redact_event
from vitalbridge.settings import Settings

_HANDLER_MARK = "_vitalbridge_handler"

# Library loggers whose DEBUG output carries parameters, headers or raw bytes.
_QUIET_AT_DEBUG = {
    "sqlalchemy.engine": logging.WARNING,  # SQL parameters (PHI)
    "sqlalchemy.pool": logging.WARNING,
    "httpcore": logging.INFO,  # raw connection events
    "hpack": logging.INFO,
    "multipart": logging.INFO,
    "asyncio": logging.INFO,
}


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def build_formatter() -> structlog.stdlib.ProcessorFormatter:
    """The formatter every vitalbridge handler uses; tests attach it to capture real output."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            # Exceptions become text first, so the redaction below sees their messages too.
            structlog.processors.format_exc_info,
            redact_event,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(default=str),
        ],
    )


def _level(name: str) -> int:
    level = logging.getLevelName(name.strip().upper())
    return level if isinstance(level, int) else logging.INFO


def configure_logging(settings: Settings, *, stream: TextIO | None = None, level: str | None = None) -> None:
    """Install (or re-install) vitalbridge's handlers on the root logger; idempotent.

    ``level`` defaults to ``ECW_LOG_LEVEL``; one-shot CLI commands pass ``VB_CLI_LOG_LEVEL``."""
    level_no = _level(level or settings.ecw_log_level)
    formatter = build_formatter()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if settings.log_file is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_file,
                maxBytes=settings.log_max_bytes,
                backupCount=settings.log_backups,
                encoding="utf-8",
            )
        )
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level_no)
    for name, floor in _QUIET_AT_DEBUG.items():
        logging.getLogger(name).setLevel(max(floor, level_no))
    # uvicorn installs its own handlers unless told not to; make its loggers use ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # uvicorn's access line carries the concrete path (MRNs, device serials in path segments);
    # the hub's own ``http.access`` line logs the route template instead.
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _DropRecords) for f in access.filters):
        access.addFilter(_DropRecords())
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            # The same processor once more before the event leaves structlog, so a handler that
            # is not ours (an error tracker's, a test runner's) never sees raw values either.
            redact_event,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger named like a stdlib one (``vitalbridge.audit``)."""
    return structlog.stdlib.get_logger(name)


def debug_http_enabled(settings: Settings) -> bool:
    return _level(settings.ecw_log_level) <= logging.DEBUG
