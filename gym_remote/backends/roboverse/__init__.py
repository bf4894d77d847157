"""The ``roboverse`` backend: a RoboVerse MetaSim task (IsaacSim by default, MuJoCo on a CPU) as one session.

:func:`roboverse_factory` turns the server's settings into a session factory; the rest of the
package, one concept a module:

- :mod:`~gym_remote.backends.roboverse.session`: :class:`MetaSimSession`, one batched task env
  (seeding, states, autoreset: see there);
- :mod:`~gym_remote.backends.roboverse.actions`: how joint targets reach a handler on the right joints;
- :mod:`~gym_remote.backends.roboverse.state`: MetaSim's ``TensorState`` as the flat state;
- :mod:`~gym_remote.backends.roboverse.runtime`: the server process around MetaSim (working
  directory, device, logging, scenario keywords, start states);
- :mod:`~gym_remote.backends.roboverse.data`: MetaSim's data folder written from our own model.

The factory keeps to this MetaSim surface: ``metasim.task.registry.get_task_class(name)``; a DEEP
COPY of ``task_cls.scenario`` per session, ``.update(simulator=..., num_envs=..., headless=...,
**kwargs)`` (``update`` mutates in place, and the class attribute is shared: without the copy one
client's keywords leak into the next session); ``task_cls(scenario, device=...)`` (the handler
launches the simulator).

MetaSim finds its data (``roboverse_data/...``) relative to the working directory and imports every
non-underscore ``.py`` file there when it resolves a robot name, so the server takes a ``data_dir``
setting and runs in it (``python -m gym_remote.backends.roboverse.data --out DIR`` writes one).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from gym_remote.backends.batched import SingleSceneGuard, batch_size, check_autoreset, split_kwargs
from gym_remote.backends.roboverse.runtime import (
    check_scenario_keys,
    default_device,
    enter_data_dir,
    import_task_registry,
    quiet_loguru,
    resets_in_step_by_class,
)
from gym_remote.backends.roboverse.session import MetaSimSession
from gym_remote.backends.roboverse.state import tensor_state_schema, tensor_state_to_flat
from gym_remote.errors import BadRequestError
from gym_remote.session import Session, SessionOptions, choose_task

__all__ = [
    "ROBOVERSE_CLIENT_FIELDS",
    "ROBOVERSE_SERVER_KEYS",
    "MetaSimSession",
    "roboverse_factory",
    "tensor_state_schema",
    "tensor_state_to_flat",
]

#: ``ScenarioCfg`` fields a client may set unless the server allows more (``serve --allow-kwargs
#: PATTERN``): the control step (``decimation``) and the spacing of the sub-envs. The others
#: (``robots``, ``objects``, ``cameras``, ``scene``, ``lights``, ``render``, ``sim_params``) change what
#: the GPU box builds and renders, a budget that is the operator's to open.
ROBOVERSE_CLIENT_FIELDS = ("decimation", "env_spacing")

#: Server-side ``--kwargs`` keys that configure the backend rather than the scenario.
ROBOVERSE_SERVER_KEYS = frozenset(
    {"num_envs", "device", "simulator", "headless", "resets_in_step", "data_dir", "metasim_log_level"}
)


def roboverse_factory(task: str | None, kwargs: dict[str, Any], **options: Any) -> Callable[[SessionOptions], Session]:
    """Serve MetaSim task ``task`` (a registry name such as ``"stack_cube"``).

    Backend settings (from ``kwargs`` or keyword ``options``): ``simulator`` (default ``"isaacsim"``;
    ``"mujoco"`` runs on a CPU), ``device`` (default ``"cuda"`` when torch sees a GPU, else ``"cpu"``),
    ``headless`` (default True), ``num_envs`` (the most sub-envs one session may ask for),
    ``resets_in_step`` (override the detection by task class), ``data_dir`` (MetaSim's data folder,
    made the working directory), ``metasim_log_level`` (loguru level, default ``"INFO"``). Every other
    key is a ``ScenarioCfg`` field given to ``scenario.update(...)``, then the client's ``task_kwargs``
    (only :data:`ROBOVERSE_CLIENT_FIELDS` and what ``serve --allow-kwargs`` adds).

    Raises:
        TypeError: an unknown keyword option.
        FileNotFoundError: ``data_dir`` holds no ``roboverse_data``.
        KeyError: ``task`` is not registered (at start-up, with MetaSim's message).
    """
    settings, scenario_overrides = split_kwargs(kwargs, ROBOVERSE_SERVER_KEYS)
    allow_any_task = bool(options.pop("allow_any_task", True))
    options.pop("vectorization", None)  # MetaSim batches natively
    unknown = set(options) - ROBOVERSE_SERVER_KEYS
    if unknown:
        raise TypeError(f"unknown roboverse backend options {sorted(unknown)}; known: {sorted(ROBOVERSE_SERVER_KEYS)}")
    settings.update(options)
    simulator = str(settings.get("simulator", "isaacsim"))
    device = settings.get("device") or default_device()
    headless = bool(settings.get("headless", True))
    cap = settings.get("num_envs")
    quiet_loguru(str(settings.get("metasim_log_level", "INFO")))
    if simulator == "mujoco" and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless: before MetaSim imports mujoco
    enter_data_dir(settings.get("data_dir"))

    registry = import_task_registry()  # before READY, the tracebacks some task packages print held back
    if task:
        check_scenario_keys(registry.get_task_class(task).scenario, scenario_overrides, "server's --kwargs")
    scene = SingleSceneGuard("roboverse")

    def factory(opts: SessionOptions) -> Session:
        name = choose_task(opts, task, allow_any_task, ROBOVERSE_SERVER_KEYS - {"num_envs"}, check_allowed=False)
        try:
            task_cls = registry.get_task_class(name)
        except KeyError as exc:
            raise BadRequestError(str(exc.args[0] if exc.args else exc)) from exc
        check_scenario_keys(task_cls.scenario, opts.task_kwargs, "client's task_kwargs")
        refused = sorted(k for k in opts.task_kwargs if not opts.limits.allows(k, ROBOVERSE_CLIENT_FIELDS))
        if refused:
            allowed = [*ROBOVERSE_CLIENT_FIELDS, *sorted(opts.limits.allowed_kwargs or ())]
            raise BadRequestError(
                f"scenario keywords {refused} are not ones this server lets clients set; it allows {allowed}. The "
                "server's operator widens the list with serve --allow-kwargs PATTERN (or allow_kwargs in a task config)"
            )
        in_step = settings.get("resets_in_step")
        in_step = resets_in_step_by_class(task_cls) if in_step is None else bool(in_step)
        check_autoreset("roboverse", opts.autoreset_mode, in_step, opts.num_envs is None)
        n = batch_size(opts, cap, "roboverse")
        if simulator == "mujoco" and n > 1:
            raise BadRequestError(
                f"MetaSim's MuJoCo handler holds one env, not num_envs={n}: use a RemoteEnv or num_envs=1, "
                "or fan out over several servers (RemoteVectorEnv(hosts=[...]))"
            )
        scene.check_free()
        scenario = copy.deepcopy(task_cls.scenario)  # update() mutates, and the class's copy is shared
        overrides = {**scenario_overrides, **opts.task_kwargs}
        scenario.update(simulator=simulator, num_envs=n, headless=headless, **overrides)
        env = task_cls(scenario, device=device)
        if opts.max_episode_steps is not None:
            env.max_episode_steps = int(opts.max_episode_steps)
        return scene.open(
            env,
            partial(
                MetaSimSession,
                env,
                task=name,
                requested_envs=opts.num_envs,
                autoreset_mode=opts.autoreset_mode,
                resets_in_step=in_step,
                simulator=simulator,
                render_mode=opts.render_mode,
            ),
        )

    return factory
