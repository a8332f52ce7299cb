"""Logging through structlog: every record, logged with structlog or with the standard library, becomes one line,
JSON (EAM_LOG_FORMAT=json, production) or plain text (console), with the context bound in contextvars (request id;
worker, job, step, attempt and trace id) merged in. settings.py builds LOGGING here and calls `configure`."""
import logging

import structlog
from django.core.exceptions import ImproperlyConfigured
from structlog.stdlib import ProcessorFormatter

FORMATS = ("console", "json")


def _without_color_message(logger, method_name, event_dict):
    event_dict.pop("color_message", None)  # uvicorn's copy of the message with terminal colours, as an extra
    return event_dict

# What every line gets, whether it comes from structlog or from a `logging.getLogger(__name__)` logger (whose
# `extra=` fields are kept).
SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.stdlib.ExtraAdder(),
    _without_color_message,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def formatter(log_format: str) -> dict:
    """The dictConfig entry of the one formatter every handler uses."""
    if log_format == "json":
        render = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        render = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)]
    return {
        "()": ProcessorFormatter,
        "processors": [ProcessorFormatter.remove_processors_meta, *render],
        "foreign_pre_chain": SHARED,
    }


def logging_config(*, log_format: str, level: str) -> dict:
    """LOGGING: the root logger and Django's own loggers (its request errors, runserver's access lines) write
    through the one formatter, so that with `json` every line on stderr parses."""
    if log_format not in FORMATS:
        raise ImproperlyConfigured(f"EAM_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": formatter(log_format)},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structlog"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's defaults give these handlers of their own, with their own format.
            "django": {"handlers": [], "level": level, "propagate": True},
            "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
            # uvicorn's own lines once the application is loaded (its access log is left as uvicorn was told).
            "uvicorn.error": {"handlers": ["console"], "propagate": False},
        },
    }


def configure() -> None:
    """structlog's own loggers hand their events to the standard library, whose formatter renders them; so do
    Python's warnings (logger `py.warnings`), which would otherwise be printed to stderr as they are."""
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
