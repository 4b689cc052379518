"""Fixtures for tests/kthena: the integration suite's real control plane, reused.

tests/integration/conftest.py owns the LocalCluster fixtures; loading it under another
module name re-exports them here without moving them (pytest collects fixtures from the
attributes of a conftest module). This directory then gets its own session cluster.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_path = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
# Its own imports (oci_testbed) are its siblings, as when pytest imports it.
if str(_path.parent) not in sys.path:
    sys.path.insert(0, str(_path.parent))
_spec = importlib.util.spec_from_file_location("podplug_integration_fixtures", _path)
assert _spec and _spec.loader
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures
_spec.loader.exec_module(_fixtures)

cluster = _fixtures.cluster
api = _fixtures.api


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # test_parity needs the control plane, like everything under tests/integration
    import pytest

    for item in items:
        if "tests/kthena/test_parity" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
