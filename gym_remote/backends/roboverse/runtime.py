"""The server process around MetaSim: working directory, device, logging, scenario keywords, start states.

These are the parts of serving MetaSim that are about MetaSim's habits rather than the session:

- it finds ``roboverse_data/...`` relative to the working directory and, resolving a robot or scene
  name, imports every non-underscore ``.py`` file there (:func:`enter_data_dir`);
- its task env defaults to CUDA, which fails on a CPU-only torch (:func:`default_device`);
- its success checker logs through loguru at DEBUG on every step (:func:`quiet_loguru`);
- some of RoboVerse's task packages print a traceback for every module they cannot import while
  the registry discovers tasks (:func:`import_task_registry`);
- ``ScenarioCfg.update`` sets any attribute it is given, so a misspelt keyword is silently ignored
  (:func:`check_scenario_keys`);
- no handler seeds, so a reproducible start is a start state drawn with the session's generator from
  the task's own initial states (:func:`start_state_pool`);
- ``RLTaskEnv`` tasks reset inside ``step()``, ``BaseTaskEnv`` ones do not (:func:`resets_in_step_by_class`),
  and each handler states its step time its own way (:func:`control_period`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gym_remote.errors import BadRequestError

__all__ = [
    "check_scenario_keys",
    "control_period",
    "default_device",
    "enter_data_dir",
    "import_task_registry",
    "is_rl_task",
    "quiet_loguru",
    "resets_in_step_by_class",
    "start_state_pool",
]

log = logging.getLogger(__name__)


def start_state_pool(env: Any) -> list[Any] | None:
    """Every start state the task offers (MetaSim's per-env dict states), or None if it offers none.

    The task's trajectory file when it names one (``traj_filepath``: all of its demos, where the task
    itself keeps only the first ``num_envs``), else the task's own ``_initial_states`` list.
    """
    path = getattr(env, "traj_filepath", None)
    if isinstance(path, str) and os.path.exists(path):
        try:
            from metasim.utils.demo_util import get_traj
        except ImportError:
            get_traj = None
        if get_traj is not None:
            states, _, _ = get_traj(path, env.scenario.robots[0], env.handler)
            if states:
                return list(states)
    initial = getattr(env, "_initial_states", None)
    return list(initial) if isinstance(initial, list) and initial else None


def default_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"`` (MetaSim's tasks assume CUDA); logged."""
    import torch

    cuda = bool(torch.cuda.is_available())
    device = "cuda" if cuda else "cpu"
    log.info("device %s (torch.cuda.is_available() is %s); set --kwargs '{\"device\": ...}' to choose", device, cuda)
    return device


def enter_data_dir(data_dir: str | os.PathLike[str] | None) -> None:
    """Run in MetaSim's data folder: it finds ``roboverse_data/`` and imports ``*.py`` relative to the cwd.

    With ``data_dir`` None the working directory stays, and any Python files MetaSim could import
    from it are logged.

    Raises:
        FileNotFoundError: ``data_dir`` has no ``roboverse_data`` folder (the message gives the command
            that writes one).
    """
    if data_dir is None:
        here = Path.cwd()
        log.info("MetaSim's working directory is %s (set data_dir to choose)", here)
        stray = sorted(p.name for p in here.glob("*.py") if not p.name.startswith("_"))
        if stray:
            log.warning("MetaSim may import these files of %s when it resolves a robot: %s", here, stray)
        return
    path = Path(data_dir).expanduser().resolve()
    if not (path / "roboverse_data").is_dir():
        raise FileNotFoundError(
            f"data_dir {path} has no roboverse_data/ folder; write one with "
            f"'python -m gym_remote.backends.roboverse.data --out {path}'"
        )
    os.chdir(path)
    log.info("MetaSim runs in %s", path)


def import_task_registry() -> Any:
    """Import ``metasim.task.registry`` with its task discovery run (``list_tasks()``); return it.

    Importing MetaSim's task package already discovers every task module, and
    ``roboverse_pack.tasks.humanoid_bench`` calls ``traceback.print_exc()`` for each one it cannot
    import (at dd8ff06, all of them without torchvision), although the tasks served here do not need
    them. A traceback in the server log before READY fails an SSH launch at once
    (``HostConfig.fail_on_traceback``), so what the import prints on ``sys.stderr`` is held back and
    logged as one warning that names each error.
    """
    import importlib

    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            registry = importlib.import_module("metasim.task.registry")
            if callable(getattr(registry, "list_tasks", None)):  # MetaSim's own; a stand-in may not discover
                registry.list_tasks()
    except BaseException:
        log.error("importing MetaSim's task registry failed; it printed:\n%s", printed.getvalue()[-4000:])
        raise
    reasons = sorted(
        {
            line.strip()
            for line in printed.getvalue().splitlines()
            if line.strip() and not line[0].isspace() and not line.startswith("Traceback")
        }
    )
    if reasons:
        log.warning("MetaSim's task discovery skipped modules it could not import: %s", "; ".join(reasons)[:2000])
    return registry


def quiet_loguru(level: str) -> None:
    """MetaSim logs through loguru at DEBUG on every step (its success checker): keep ``level`` and up."""
    try:
        import sys

        from loguru import logger
    except ImportError:
        return
    logger.remove()
    logger.add(sys.stderr, level=level)


def check_scenario_keys(scenario: Any, keys: Mapping[str, Any], source: str) -> None:
    """Refuse keywords that are not fields of MetaSim's ``ScenarioCfg`` (``update`` would set them silently).

    Raises:
        BadRequestError: with the unknown names, close matches and the known fields.
    """
    if not dataclasses.is_dataclass(scenario):
        return
    fields = sorted(f.name for f in dataclasses.fields(scenario))
    unknown = sorted(set(keys) - set(fields))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, fields, 1)
            hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
        raise BadRequestError(
            f"unknown scenario keywords from the {source}: {', '.join(hints)}; ScenarioCfg has {fields}"
        )


def is_rl_task(task_cls: type) -> bool:
    """Whether a MetaSim task class derives from ``RLTaskEnv`` (by name: MetaSim need not be importable here)."""
    return any(cls.__name__ == "RLTaskEnv" for cls in getattr(task_cls, "__mro__", ()))


def control_period(handler: Any) -> float | None:
    """Simulated seconds per env step, where the handler says: MuJoCo's timestep x decimation, or ``dt``."""
    physics = getattr(handler, "physics", None)
    try:
        if physics is not None:
            return float(physics.model.opt.timestep) * int(handler.decimation)
        dt = getattr(handler, "dt", None)
        return None if dt is None else float(dt)
    except (AttributeError, TypeError, ValueError):
        return None


def resets_in_step_by_class(task_cls: type) -> bool:
    """MetaSim's ``RLTaskEnv`` resets finished sub-envs inside ``step()``; ``BaseTaskEnv`` does not."""
    return is_rl_task(task_cls)
