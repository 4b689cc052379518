"""Repository-wide pytest settings.

Under ``make test`` (PODPLUG_STRICT=1) a skipped test is a failure: every
toolchain the suite needs is installed by make, so a skip means something that
should have been tested was not.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

STRICT = os.environ.get("PODPLUG_STRICT") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under PODPLUG_STRICT=1 (make test): {reason}"
