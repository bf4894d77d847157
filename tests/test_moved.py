"""Application code left the library (gym_remote_apps): the old names still resolve, with a DeprecationWarning, for
one release; and no library module imports the applications or the command line."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import gym_remote

LIBRARY = Path(gym_remote.__file__).parent
#: What may name the applications: the command line (``python -m gym_remote`` is its entry), and the old homes of
#: what moved (for one release).
ALLOWED = {"cli", "__main__.py", "_moved.py", "replay/demo.py", "tasks/isaaclab_stack.py", "tasks/metasim_stack.py"}


@pytest.mark.parametrize(
    "old, new",
    [
        ("gym_remote.replay.demo", "gym_remote_apps.demo"),
        ("gym_remote.tasks.isaaclab_stack", "gym_remote_apps.isaaclab_stack"),
        ("gym_remote.tasks.metasim_stack", "gym_remote_apps.metasim_stack"),
    ],
)
def test_a_moved_module_is_an_alias_that_warns(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


@pytest.mark.parametrize(
    "name, new", [("run_demo", "gym_remote_apps.demo"), ("render_benchmark", "gym_remote.bench.render")]
)
def test_a_moved_replay_name_warns(name, new):
    import gym_remote.replay as replay

    replay.__dict__.pop(name, None)
    with pytest.warns(DeprecationWarning, match=f"gym_remote.replay.{name} moved to {new}.{name}"):
        value = getattr(replay, name)
    assert value is getattr(importlib.import_module(new), name)
    assert name not in replay.__all__


def test_python_m_of_the_old_expert_path_runs_the_benchmark():
    out = subprocess.run(
        [sys.executable, "-m", "gym_remote.tasks.expert", "--episodes", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "success rate: 100.0% (1/1)" in out.stdout
    assert "gym_remote.tasks.expert moved to gym_remote_apps.expert" in out.stderr


def test_no_library_module_imports_the_applications_or_the_command_line():
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        rel = path.relative_to(LIBRARY).as_posix()
        if rel.split("/")[0] in ALLOWED or rel in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            up = [n for n in names if n.split(".")[0] == "gym_remote_apps" or n.split(".")[:2] == ["gym_remote", "cli"]]
            offenders += [f"{rel}: {n}" for n in up]
    assert not offenders
