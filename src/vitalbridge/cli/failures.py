"""Every CLI failure is one line on stderr that says what to do, and a non-zero exit.

``vitalbridge --debug …`` lets the exception through with its traceback instead. Messages name
settings and commands, never values: a setting's value may be a password and a database error may
quote a row. Exit codes: 1 for a failure, 2 for a usage error (Click's convention), 130 for Ctrl-C.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import typer
import typer.main
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from vitalbridge.errors import VitalbridgeError
from vitalbridge.settings import setting_for


@dataclass
class CliState:
    debug: bool = False


STATE = CliState()


def settings_problem(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = setting_for(str(error["loc"][0])) if error["loc"] else "settings"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return f"invalid setting {'; '.join(parts)} (fix the environment or .env)"


def one_line(exc: BaseException) -> tuple[str, int]:
    """The message and exit code a failure becomes."""
    if isinstance(exc, typer.TyperException):
        # Click's usage errors (bad option, wrong choice, missing argument) and its other exceptions.
        code = int(getattr(exc, "exit_code", 1))
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and code == 2 else ""
        format_message = getattr(exc, "format_message", None)
        text = format_message() if callable(format_message) else str(exc)
        return f"{text}{hint}", code
    if isinstance(exc, VitalbridgeError):
        return str(exc), 1
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return settings_problem(exc), 1
    if isinstance(exc, SQLAlchemyError):
        return (
            f"database error ({type(exc).__name__}): check VB_DATABASE_URL and that `vitalbridge migrate` ran; "
            "rerun with --debug for details"
        ), 1
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}; rerun with --debug for details", 1
    return f"unexpected {type(exc).__name__}; rerun with --debug for the traceback", 1


def report(exc: BaseException) -> int:
    message, code = one_line(exc)
    flat = " ".join(message.split())
    print(f"error: {flat}", file=sys.stderr, flush=True)
    return code


def run(app: typer.Typer) -> int:
    """Run the Click command, turning any failure into one line unless ``--debug`` was given."""
    try:
        result = typer.main.get_command(app).main(standalone_mode=False)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if STATE.debug:
            raise
        return report(exc)
    return result if isinstance(result, int) else 0
