"""The ``isaaclab`` backend: an Isaac Lab task served as one batched session per server process.

Isaac Lab 3.x is served the 3.x way (cfg first, then ``launch_simulation``, then
``gym.make(id, cfg=cfg)``; Newton and ovphysx (PhysX) run kit-less on a GPU or on the CPU) and 2.x
the 2.x way (``AppLauncher`` first); see :mod:`~gym_remote.backends.isaaclab.runtime`. Tested
against the real Isaac Lab 3.0.0 on CPU, Newton and PhysX (``tests/test_isaaclab_real.py``,
``tests/test_isaaclab_physx_real.py``); the 2.x and Isaac Sim (Kit) paths only against stand-ins
(``tests/standins``).

Server settings (``serve --kwargs``, or a task config; clients may not send them):

- ``device``: ``"cuda:0"`` when torch sees a GPU, else ``"cpu"`` (logged);
- ``num_envs``: the most sub-envs one session may ask for;
- ``asset_root``: a local mirror of NVIDIA's asset server (``ISAACSIM_ASSET_ROOT``), for boxes
  that cannot reach it; :mod:`~gym_remote.backends.isaaclab.assets` builds one for the tests;
- ``overrides``: Isaac Lab's own Hydra overrides (``["presets=newton_mjwarp",
  "env.scene.replicate_physics=true"]``), also ``serve --override STR``;
- ``app``: launcher arguments (``{"enable_cameras": true}``); ``quat_order`` (``"wxyz"``/``"xyzw"``,
  default from the version); ``obs_group`` (default ``"policy"``; ``None`` serves every group).

Client ``task_kwargs``: ``overrides`` (a list of Hydra override strings, applied after the
server's) and env-cfg attributes by dotted path (``{"episode_length_s": 3.0}``). What a client may
set is an allow-list of cfg paths, checked whatever the spelling (keyword, dotted keyword, Hydra
override): by default ``physics``, ``episode_length_s``, ``compute_final_obs``, ``seed``,
``scene.env_spacing`` and ``rewards.*.weight``; ``serve --allow-kwargs PATTERN`` adds fnmatch
patterns (``'scene.tiled_camera.*'`` for camera sizes, a GPU memory budget left to the operator).
Client overrides are read with Hydra's own grammar, and values that name a file or code or read the
server's environment (quoted strings, lists, dicts, ``${...}``, ``/x``, ``~/x``) are refused unless
the server runs with ``--allow-client-paths``. Whatever is allowed, the final cfg keeps the server's
``scene.num_envs`` (the client's ``num_envs``, capped by ``--max-envs``) and ``sim.device``; see
:mod:`~gym_remote.backends.isaaclab.client_settings`.

Physics: Isaac Lab's own ``physics=NAME`` override from any of those places (the client's counts
last): ``newton_mjwarp``, ``ovphysx`` (NVIDIA's kit-less PhysX; set in code for tasks that declare
no such preset), ``physx``; see :mod:`~gym_remote.backends.isaaclab.physics`. Each session builds
its own cfg, so consecutive sessions of one server may run different engines.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium as gym

from gym_remote.backends.batched import SingleSceneGuard, batch_size, check_autoreset, split_kwargs
from gym_remote.backends.isaaclab.client_settings import (
    check_allowed,
    check_final_cfg,
    override_paths,
)
from gym_remote.backends.isaaclab.physics import parse_with_physics
from gym_remote.backends.isaaclab.runtime import (
    IsaacLabRuntime,
    default_device,
    isaaclab_version,
    resolve_task_id,
    use_asset_root,
)
from gym_remote.backends.isaaclab.session import IsaacLabSession
from gym_remote.backends.isaaclab.state import isaaclab_schema, isaaclab_state_to_flat, quat_order_for_version
from gym_remote.errors import BadRequestError, ConfigError
from gym_remote.session import Session, SessionLimits, SessionOptions, choose_task
from gym_remote.state import QuatOrder

__all__ = [
    "ISAACLAB_SERVER_KEYS",
    "IsaacLabSession",
    "apply_overrides",
    "isaaclab_factory",
    "isaaclab_schema",
    "isaaclab_state_to_flat",
    "isaaclab_version",
    "quat_order_for_version",
]

log = logging.getLogger(__name__)

#: Keys of the server-side ``--kwargs`` that configure the backend instead of the task. Clients may
#: not send them: they choose the device, the app, the files and the hardware budget of the GPU box.
ISAACLAB_SERVER_KEYS = frozenset({"num_envs", "device", "app", "quat_order", "obs_group", "asset_root"})

#: The process-wide Isaac Lab runtime (Kit or kit-less); one per server process.
RUNTIME: IsaacLabRuntime | None = None


def apply_overrides(cfg: Any, overrides: Mapping[str, Any]) -> None:
    """Set env-cfg attributes by dotted path (``{"episode_length_s": 5, "scene.env_spacing": 3}``).

    Raises:
        BadRequestError: an unknown or private path: a typo must not silently train on the default task.
    """
    for path, value in overrides.items():
        target = cfg
        parts = str(path).split(".")
        if any(not part or part.startswith("_") for part in parts):
            raise BadRequestError(f"task keyword {path!r}: private or empty attribute names are not settable")
        for part in parts[:-1]:
            if not hasattr(target, part):
                raise BadRequestError(f"task keyword {path!r}: the env config has no {part!r}")
            target = getattr(target, part)
        if not hasattr(target, parts[-1]):
            raise BadRequestError(f"task keyword {path!r}: the env config has no {parts[-1]!r}")
        setattr(target, parts[-1], value)


def declared_physics(task: str) -> list[str]:
    """The physics presets ``task``'s env cfg declares (``["isaacsim_physx", "newton_mjwarp", ...]``)."""
    from isaaclab_tasks.utils.hydra import collect_presets
    from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry
    from isaaclab_tasks.utils.preset_target import PresetTarget

    try:
        raw = load_cfg_from_registry(task, "env_cfg_entry_point")
        presets = collect_presets(raw)
    except Exception:  # only used to explain a refusal: never let it hide the refusal itself
        log.debug("could not list %s's physics presets", task, exc_info=True)
        return []
    return sorted(
        {
            name
            for alts in presets.values()
            for name, alt in alts.items()
            if name != "default" and PresetTarget.PHYSICS.matches(alt)
        }
    )


def _override_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise BadRequestError(f"{where} must be a list of 'key=value' strings, e.g. ['presets=newton_mjwarp']")
    bad = [v for v in value if "=" not in v]
    if bad:
        raise BadRequestError(f"{where}: {bad} are not 'key=value' overrides")
    return list(value)


def _runtime() -> IsaacLabRuntime:
    global RUNTIME
    if RUNTIME is None:
        RUNTIME = IsaacLabRuntime(isaaclab_version())
    return RUNTIME


def isaaclab_factory(task: str | None, kwargs: dict[str, Any], **options: Any) -> Callable[[SessionOptions], Session]:
    """Serve Isaac Lab task ``task``; ``kwargs`` are the server's ``--kwargs`` (see the module docstring).

    Everything that can be checked before a client connects is checked here, before READY: the
    version, the device, the asset root, the id, and (3.x) the cfg with every override applied.

    Raises:
        ConfigError: an unknown task id (the message names close ids), a bad override or cfg attribute.
        TypeError: an unknown backend option.
    """
    settings, cfg_overrides = split_kwargs(kwargs, ISAACLAB_SERVER_KEYS)
    server_overrides = _override_list(cfg_overrides.pop("overrides", None), "overrides")
    allow_any_task = bool(options.pop("allow_any_task", True))
    options.pop("vectorization", None)  # Isaac Lab batches natively
    unknown = set(options) - ISAACLAB_SERVER_KEYS
    if unknown:
        raise TypeError(f"unknown isaaclab backend options {sorted(unknown)}; known: {sorted(ISAACLAB_SERVER_KEYS)}")
    settings.update(options)
    device = str(settings.get("device") or default_device())
    cap = settings.get("num_envs")
    obs_group = settings.get("obs_group", "policy")
    app_args = dict(settings.get("app") or {})
    use_asset_root(settings.get("asset_root"))

    runtime = _runtime()
    quat_order: QuatOrder = settings.get("quat_order") or quat_order_for_version(runtime.version)
    if not runtime.is_3x:
        runtime.start_app(app_args)  # 2.x: Kit FIRST; isaaclab_tasks and every omni/pxr module need it
    importlib.import_module("isaaclab_tasks")  # registers the Isaac-* ids with Gymnasium
    from isaaclab_tasks.utils import parse_env_cfg

    log.info("Isaac Lab %s (quaternions %s) on %s", runtime.version, quat_order, device)
    if device.startswith("cuda") and default_device() == "cpu":
        log.warning("device %r asked for, but torch sees no GPU", device)

    def make_cfg(
        name: str, n: int | None, client_kwargs: Mapping[str, Any], limits: SessionLimits | None = None
    ) -> Any:
        """``name``'s env cfg: the server's overrides, the client's, then cfg attributes (server's, client's).

        With ``limits`` (a client's HELLO), each client setting is checked as the module docstring
        says: its Hydra overrides before Isaac Lab parses them, its dotted keywords once the cfg
        shows they exist, and the final cfg's ``scene.num_envs`` and ``sim.device``.
        """
        client_kwargs = dict(client_kwargs)
        client_overrides = _override_list(client_kwargs.pop("overrides", None), "task keyword overrides")
        if limits is not None:
            check_allowed(override_paths(client_overrides, limits.allow_client_paths), limits)
        overrides = server_overrides + client_overrides
        if runtime.is_3x:
            cfg = parse_with_physics(
                lambda ovr: parse_env_cfg(name, device=device, num_envs=n, overrides=ovr),
                name,
                overrides,
                partial(declared_physics, name),
            )
        elif overrides:
            raise BadRequestError(f"Hydra overrides need Isaac Lab 3.x (this is {runtime.version}); got {overrides}")
        else:
            cfg = parse_env_cfg(name, device=device, num_envs=n)
        apply_overrides(cfg, {**cfg_overrides, **client_kwargs})
        if limits is not None:
            check_allowed(client_kwargs, limits)
            check_final_cfg(cfg, n if n is not None else cfg.scene.num_envs, device, client_kwargs)
        return cfg

    def resolve(name: str) -> str:
        return resolve_task_id(name, gym.registry, runtime.major)

    if task:  # before READY: a bad id, override or cfg attribute fails the start-up, not the first HELLO
        try:
            task = resolve(task)
            first_cfg = make_cfg(task, None, {})
        except BadRequestError as exc:
            raise ConfigError(exc.message) from None
        try:
            runtime.enter(first_cfg, app_args)  # 3.x: starts Kit here when the task needs it, as 2.x did
        except RuntimeError as exc:
            raise ConfigError(str(exc)) from exc
    scene = SingleSceneGuard("isaaclab")

    def factory(opts: SessionOptions) -> Session:
        name = choose_task(opts, task, allow_any_task, ISAACLAB_SERVER_KEYS - {"num_envs"}, check_allowed=False)
        name = resolve(name)
        check_autoreset("isaaclab", opts.autoreset_mode, True, opts.num_envs is None)
        if opts.render_mode is not None and (runtime.is_3x or not app_args.get("enable_cameras")):
            raise BadRequestError(
                f"render_mode={opts.render_mode!r}: "
                + (
                    f"Isaac Lab {runtime.version} returns no frames from render() (its frames come from camera "
                    "sensors and video recorders). Watch the run the gym-remote way: with_state=True and "
                    "MujocoReplayWrapper render the states locally"
                    if runtime.is_3x
                    else 'it needs cameras: start the server with --kwargs \'{"app": {"enable_cameras": true}}\''
                )
            )
        n = batch_size(opts, cap, "isaaclab")
        scene.check_free()
        cfg = make_cfg(name, n, opts.task_kwargs, opts.limits)
        if opts.max_episode_steps is not None:
            # Isaac Lab's limit is ceil(episode_length_s / step_dt) steps: aim half a step short of it.
            cfg.episode_length_s = (opts.max_episode_steps - 0.5) * cfg.sim.dt * cfg.decimation
        try:
            runtime.enter(cfg, app_args)
        except RuntimeError as exc:
            raise BadRequestError(str(exc)) from exc
        make_kwargs: dict[str, Any] = {"cfg": cfg}
        if opts.render_mode is not None:
            make_kwargs["render_mode"] = opts.render_mode
        env = gym.make(name, **make_kwargs)
        return scene.open(
            env,
            partial(
                IsaacLabSession,
                env,
                task=name,
                requested_envs=opts.num_envs,
                autoreset_mode=opts.autoreset_mode,
                quat_order=quat_order,
                obs_group=obs_group,
                version=runtime.version,
                render_mode=opts.render_mode,
            ),
        )

    return factory
