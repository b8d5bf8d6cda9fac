"""What ``imagemint serve`` prints, and the debug log that gets everything else.

The console shows, one line each:

* every HTTP request: ``POST /v1/images/generations 200 812 ms job <id>`` (method,
  path without the query, status, duration, and the job id: the one the answer carries
  (:func:`imagemint_dev.local.server.job_id_of`), else the one the function logged while
  answering);
* our own warnings and errors: records at WARNING and above of the ``imagemint``
  logger (the functions' Powertools logger) and of ``imagemint_dev`` (this runtime),
  as ``warning: <message> key=value ...``.

The debug log (``<state dir>/debug.log``, rewritten at each start) gets everything:
the functions' Powertools JSON lines at their configured level, the request lines,
moto and its Step Functions interpreter (the ``NoSuchJsonPathError`` lines of every
``IsPresent`` choice), werkzeug (moto's request log), botocore, Python warnings, and
full tracebacks.

:class:`Output` changes the process's logging when installed and puts it back when
uninstalled; the local runtime installs one only when asked (``start(console=...)``),
so tests that start it programmatically keep their own logging.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, TextIO

CONSOLE_LOGGERS = ("imagemint", "imagemint_dev")
MAX_LINE = 240
_RECORD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_log = logging.getLogger("imagemint_dev.local.http")


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` on one line (whitespace runs folded), at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class OneLineFormatter(logging.Formatter):
    """``warning: <message> key=value ...``: the record's own extra fields (scalars only), no traceback."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{record.levelname.lower()}: {record.getMessage()}"]
        for key, value in record.__dict__.items():
            if (
                key in _RECORD_FIELDS
                or key.startswith("_")
                or not isinstance(value, str | int | float | bool)
            ):
                continue
            parts.append(f"{key}={value}")
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            parts.append(f"({type(exc).__name__}: {exc})")
        return one_line(" ".join(parts))


class _NotPowertools(logging.Filter):
    """The root handler leaves the functions' records to their Powertools handler (no line twice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "imagemint" or record.name.startswith("imagemint."))


#: One box per HTTP request, set by the local front before it calls the function. The function runs
#: in its own thread (the Lambda timeout), started with a copy of the request's context, so what it
#: logs lands in the request's box.
_request_box: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "imagemint_request_job", default=None
)


def begin_request() -> None:
    """Start remembering the job id the functions log for the request this thread is answering."""
    _request_box.set({})


class _JobOfThread(logging.Filter):
    """Remembers the first ``job_id`` the functions logged for a request (or, outside one, per thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = getattr(record, "job_id", None)
        if isinstance(job_id, str) and job_id:
            box = _request_box.get()
            if box is not None:
                box.setdefault("job_id", job_id)
            elif getattr(self._local, "job_id", None) is None:
                self._local.job_id = job_id
        return True

    def take(self) -> str | None:
        box = _request_box.get()
        if box is not None and box.get("job_id"):
            return box.pop("job_id")
        job_id, self._local.job_id = getattr(self._local, "job_id", None), None
        return job_id


def _powertools_handler() -> logging.Handler | None:
    """The stream handler the functions' Powertools logger writes its JSON lines with."""
    from imagemint.observability import logger  # configures the Powertools logger once

    handler = logger.registered_handler
    return handler if isinstance(handler, logging.StreamHandler) else None


def request_line(method: str, path: str, status: int, ms: float, job_id: str | None) -> str:
    safe = "".join(c if c.isprintable() and not c.isspace() else f"%{ord(c):02X}" for c in path)
    line = f"{method} {one_line(safe, 200)} {status or '-'} {ms:.0f} ms"
    return f"{line} job {job_id}" if job_id else line


class Output:
    """The console and debug-log routing of one ``imagemint serve`` process."""

    def __init__(self, debug_log: Path, console: TextIO | None = None) -> None:
        self.debug_log = debug_log
        self.console = console or sys.stderr
        self._file: logging.FileHandler | None = None
        self._console: logging.StreamHandler[TextIO] | None = None
        self._undo: list[Any] = []
        self._jobs = _JobOfThread()

    def install(self) -> Output:
        # First: Powertools configures its logger once, and filters "imagemint" out of the root
        # handlers it finds then (by substring: it would drop this runtime's own records too).
        powertools = _powertools_handler()
        self.debug_log.parent.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(self.debug_log, mode="w", encoding="utf-8")
        file.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
        )
        file.addFilter(_NotPowertools())
        console = logging.StreamHandler(self.console)
        console.setLevel(logging.WARNING)
        console.setFormatter(OneLineFormatter())
        self._file, self._console = file, console

        root = logging.getLogger()
        level = root.level
        root.addHandler(file)
        root.setLevel(logging.INFO)
        self._undo.append(lambda: (root.removeHandler(file), root.setLevel(level)))

        # The functions' JSON lines: the same file, under the file handler's lock (whole lines).
        if powertools is not None:
            old_stream, old_lock = powertools.setStream(file.stream), powertools.lock
            powertools.lock = file.lock

            def restore_powertools() -> None:
                powertools.lock = old_lock
                powertools.setStream(old_stream)

            self._undo.append(restore_powertools)
        functions = logging.getLogger("imagemint")
        functions.addFilter(self._jobs)
        self._undo.append(lambda: functions.removeFilter(self._jobs))
        for name in CONSOLE_LOGGERS:
            ours = logging.getLogger(name)
            ours.addHandler(console)
            self._undo.append(lambda ours=ours: ours.removeHandler(console))
        dev = logging.getLogger("imagemint_dev")
        dev_level = dev.level
        dev.setLevel(logging.INFO)  # the request lines
        self._undo.append(lambda: dev.setLevel(dev_level))
        showwarning = warnings.showwarning
        logging.captureWarnings(True)  # py.warnings -> the root handler
        self._undo.append(
            lambda: (logging.captureWarnings(False), setattr(warnings, "showwarning", showwarning))
        )
        return self

    def verbose_peers(self) -> None:
        """After the stack started: moto's request log (werkzeug, set to ERROR by the stack) into the file."""
        werkzeug = logging.getLogger("werkzeug")
        level = werkzeug.level
        werkzeug.setLevel(logging.INFO)
        self._undo.append(lambda: werkzeug.setLevel(level))

    def request(self, method: str, path: str, status: int, ms: float, job_id: str | None) -> None:
        """One request's line, on the console and in the debug log.

        A synchronous answer rarely names its job (an OpenAI ``b64_json`` answer does not): then the
        line shows the job the function logged (``extra={"job_id": ...}``) while answering; API
        functions run in the request's own thread.
        """
        logged = self._jobs.take()
        line = request_line(method, path, status, ms, job_id or logged)
        console = self._console
        if console is not None:
            console.acquire()
            try:
                console.stream.write(line + "\n")
                console.flush()
            finally:
                console.release()
        _log.info(line)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()
        if self._file is not None:
            self._file.close()
        self._file = self._console = None
