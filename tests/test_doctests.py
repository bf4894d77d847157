"""The ``Example:`` blocks of the public classes run as written (a local server each, real sockets)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "gym_remote.env",
    "gym_remote.vector.env",
    "gym_remote.sb3",
    "gym_remote.replay.wrappers",
    "gym_remote.registration",
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", MODULES)
def test_examples_run_as_written(name: str) -> None:
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False, report=True)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} example lines of {name} failed (see above)"
