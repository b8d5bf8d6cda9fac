"""Integration fixtures: real local peers (ArLocal, anvil) and provider protocol stubs, each started
by its fixture on 127.0.0.1 and stopped at the end.

Least privilege over the whole run: every local runtime started in this session (in this process, or
in an ``imagemint serve`` subprocess, which writes its recording to ``IMAGEMINT_DEV_IAM_RECORD_DIR``)
records each function's AWS operations (``imagemint_dev.local.iam``). At the end of the session every
recorded operation is checked against its function's policies in the translated template: one not
granted fails the run (exit status 1, listed under "least privilege"); grants never used are reported.
With a subset of the tests, what that subset recorded is checked.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from arweave_fixtures import *  # noqa: F403
from chain_fixtures import *  # noqa: F403
from stubs.fixtures import *  # noqa: F403

from imagemint_dev.local import iam

ROOT = Path(__file__).resolve().parents[2]
_REPORT = pytest.StashKey[str]()
_OWN_DIR = pytest.StashKey[str]()
_OK = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(iam.RECORD_DIR_ENV):  # subprocesses inherit it
        os.environ[iam.RECORD_DIR_ENV] = config.stash[_OWN_DIR] = tempfile.mkdtemp(prefix="imagemint-iam-")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    directory = Path(os.environ.get(iam.RECORD_DIR_ENV, ""))
    others = iam.load_dir(directory, skip_pid=os.getpid()) if directory.is_dir() else {}
    records = iam.merge(iam.recorded(), others)
    own = session.config.stash.get(_OWN_DIR, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)
    if not records:
        return
    policies, resolver = iam.local_policies(ROOT)
    report = iam.check(records, policies)
    session.config.stash[_REPORT] = iam.format_report(report, resolver)
    session.config.stash[_OK] = report.ok
    if not report.ok and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    text = terminalreporter.config.stash.get(_REPORT, None)
    if text:
        terminalreporter.write_sep("=", "least privilege (imagemint_dev.local.iam)")
        terminalreporter.write_line(text, red=not terminalreporter.config.stash.get(_OK, True))
