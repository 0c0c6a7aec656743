"""The common suite (reglab.testing) over every registered technique: a new technique is checked
by registering it, without editing this file."""

import pytest

from reglab.engine import registry
from reglab.testing import technique_checks

CASES = [(cls.name, name, check) for cls in registry.techniques() for name, check in technique_checks(cls)]


@pytest.mark.parametrize(("technique", "check_name", "check"), CASES, ids=[f"{t}-{n}" for t, n, _ in CASES])
def test_technique(technique, check_name, check):
    check()
