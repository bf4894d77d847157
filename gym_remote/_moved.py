"""Old homes of what moved out of the library, kept for one release with a ``DeprecationWarning``.

Application code (the demos, the simulator drivers, the expert's benchmark) lives in the sibling
package :mod:`gym_remote_apps` and the render benchmark in :mod:`gym_remote.bench.render`, so that
every import inside ``gym_remote`` points down. The stubs left at the old paths call :func:`moved`,
and ``gym_remote.replay`` forwards its two moved names through :func:`moved_attribute`; this module
is the only place the library names ``gym_remote_apps``, and it goes with the stubs.
"""

from __future__ import annotations

import importlib
import runpy
import sys
import warnings
from types import ModuleType
from typing import Any

__all__: list[str] = []


def _warn(old: str, new: str, stub: str) -> None:
    # Point the warning at whoever asked for the old name: past this module and the stub (module
    # ``stub``); ``warnings`` itself steps over the import machinery's frames.
    level, frame = 1, sys._getframe(0)
    while frame.f_back is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_globals.get("__name__") in (__name__, stub)
    ):
        level += not frame.f_code.co_filename.startswith("<frozen importlib")
        frame = frame.f_back
    warnings.warn(f"{old} moved to {new}; the old name goes in the next release", DeprecationWarning, stacklevel=level)


def moved(old: str, new: str, name: str) -> None:
    """Make module ``old`` an alias of ``new`` (``name`` is the stub's ``__name__``), or run ``new``
    as ``__main__`` when the stub itself is (``python -m old``)."""
    _warn(old, new, old)  # as __main__ the stub itself is the caller: shown by default
    if name == "__main__":
        runpy.run_module(new, run_name="__main__", alter_sys=True)
    else:
        sys.modules[old] = importlib.import_module(new)


def moved_attribute(old: str, new: str, attribute: str) -> Any:
    """``attribute`` of module ``new``, asked for as ``old.attribute`` (a module's ``__getattr__``)."""
    _warn(f"{old}.{attribute}", f"{new}.{attribute}", old)
    module: ModuleType = importlib.import_module(new)
    return getattr(module, attribute)
