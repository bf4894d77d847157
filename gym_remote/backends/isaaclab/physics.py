"""Which physics engine an Isaac Lab 3.x task runs on, chosen with Isaac Lab's own ``physics=NAME``.

Isaac Lab 3.x selects the engine with a typed Hydra override: ``physics=newton_mjwarp`` (Newton on
MuJoCo-Warp, kit-less), ``physics=ovphysx`` (NVIDIA's kit-less PhysX, the ``ovphysx`` wheel),
``physics=isaacsim_physx`` (PhysX inside Isaac Sim's Kit) or ``physics=physx`` (Isaac Sim's PhysX
where Isaac Sim is installed, else ovphysx). The override comes from any of the places the backend
takes overrides (a task config, ``serve --override``, a client's ``task_kwargs["overrides"]``) and
is passed to Isaac Lab unchanged when the task's cfg declares that preset.

Some tasks declare no preset for an engine that runs them well: ``IsaacContrib-Stack-Cube-Franka``
has none for ovphysx (Isaac Lab answers "Unknown preset(s): ovphysx"). For the engines in
:data:`IN_CODE`, :func:`parse_with_physics` then builds the cfg without the selector and sets
``cfg.sim.physics`` itself, with ``scene.replicate_physics = True`` (without it only env_0 reaches
PhysX), and logs that it did. Any other unknown name is refused with the names the task declares,
the ones set in code, and what this venv can run (:func:`runnable_physics`).

On a machine with no CUDA driver ovphysx fails inside Isaac Lab: ``isaaclab_ov`` allocates its host
staging buffers with ``wp.zeros(..., device="cpu", pinned=True)`` (18 places in 3.0.0) and Warp's
pinned allocator needs CUDA (``Warp CUDA error 35 ... wp_alloc_pinned``, then ``RuntimeError: Failed
to allocate 4 bytes on device 'cpu'``). :func:`unpin_host_buffers_without_cuda` handles exactly that:
only when Warp sees no CUDA, it makes Warp's CPU device hand out ordinary host memory for pinned
requests (pinning only speeds up copies to a GPU, and there is none). Nothing installed is edited.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Sequence
from typing import Any

from gym_remote.errors import BadRequestError, ConfigError

__all__ = [
    "IN_CODE",
    "PHYSICS_KEY",
    "parse_with_physics",
    "physics_name",
    "runnable_physics",
    "split_physics",
    "unpin_host_buffers_without_cuda",
]

log = logging.getLogger(__name__)

#: The typed Hydra selector of Isaac Lab's physics presets.
PHYSICS_KEY = "physics"

#: Engines the backend sets in code (``module:class`` of the physics cfg) for a task whose cfg
#: declares no preset for them.
IN_CODE = {"ovphysx": "isaaclab_ov.physics:OvPhysxCfg"}

#: Each engine name and the modules it needs in the server's venv (found, not imported).
_NEEDS = {
    "newton_mjwarp": ("isaaclab_newton", "newton", "mujoco_warp"),
    "newton_kamino": ("isaaclab_newton", "newton"),
    "ovphysx": ("isaaclab_ov", "ovphysx", "ovstage"),
    "isaacsim_physx": ("isaaclab_physx", "isaacsim"),
}


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def runnable_physics() -> list[str]:
    """The engines this Python can run, by Isaac Lab's preset names (``physics`` included when any PhysX is).

    Read from installed modules, nothing imported: ``newton_mjwarp``/``newton_kamino`` need Newton,
    ``ovphysx`` the ``ovphysx`` and ``ovstage`` wheels, ``isaacsim_physx`` Isaac Sim (Kit).
    """
    names = [name for name, modules in _NEEDS.items() if all(_found(m) for m in modules)]
    if "ovphysx" in names or "isaacsim_physx" in names:
        names.append("physx")
    return names


def split_physics(overrides: Sequence[str]) -> tuple[str | None, list[str]]:
    """The engine named by the last ``physics=NAME`` in ``overrides``, and the other overrides in order.

    A client's overrides come after the server's, so a client's ``physics=`` is the one that counts.
    """
    name: str | None = None
    rest: list[str] = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip().lstrip("+~") == PHYSICS_KEY:
            name = value.strip()
        else:
            rest.append(item)
    return name, rest


def physics_name(cfg: Any) -> str:
    """A short name of the engine in ``cfg.sim.physics`` (``"ovphysx"``, ``"newton"``, ``"physx"``...)."""
    physics = getattr(getattr(cfg, "sim", None), "physics", None)
    kind = type(physics).__name__
    return {
        "OvPhysxCfg": "ovphysx",
        "NewtonCfg": "newton",
        "PhysxCfg": "isaacsim_physx",
        "PhysxAutoCfg": "physx",
    }.get(kind, kind)


def parse_with_physics(
    parse: Callable[[Sequence[str]], Any], task: str, overrides: Sequence[str], declared: Callable[[], list[str]]
) -> Any:
    """Build ``task``'s env cfg with ``parse(overrides)``, honouring ``physics=NAME`` where the task has no preset.

    Args:
        parse: builds the cfg from a list of Hydra overrides (``parse_env_cfg`` with the task, device
            and ``num_envs`` bound); raises ``ValueError``/``KeyError``/``TypeError`` on a bad override.
        task: the task id, for messages.
        overrides: every override, server's first; at most one ``physics=`` counts (the last).
        declared: the physics presets the task's cfg declares (called only to explain a refusal).

    Returns:
        The cfg. When the task declares no preset named ``NAME`` and ``NAME`` is in :data:`IN_CODE`,
        ``cfg.sim.physics`` is that engine's default cfg and ``cfg.scene.replicate_physics`` is True.

    Raises:
        BadRequestError: Isaac Lab refused an override; an unknown physics name (the message lists
            the task's presets, the ones set in code and the engines this venv runs); or an engine
            this venv cannot run.
    """
    name, rest = split_physics(overrides)
    runnable = runnable_physics()
    if name is not None and name not in runnable and (name in _NEEDS or name == "physx"):
        raise BadRequestError(
            f"physics={name}: this server's venv cannot run it ({_why_not(name)}); it runs {runnable}"
        )
    chosen = rest if name is None else [*rest, f"{PHYSICS_KEY}={name}"]
    try:
        return parse(chosen)
    except (ValueError, KeyError, TypeError) as exc:
        if name is None or not _is_unknown_physics(str(exc), name):
            raise BadRequestError(f"Isaac Lab rejected the overrides {chosen} for {task!r}: {exc}") from exc
        first = exc
    if name not in IN_CODE:
        presets = declared()
        has = f"it declares {presets}" if presets else "its cfg declares no physics presets"
        raise BadRequestError(
            f"physics={name}: {task} has no such physics preset ({has}); gym-remote sets {sorted(IN_CODE)} in "
            f"code for any task; this venv runs {runnable}"
        ) from first
    try:
        cfg = parse(rest)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequestError(f"Isaac Lab rejected the overrides {rest} for {task!r}: {exc}") from exc
    module, _, cls = IN_CODE[name].partition(":")
    cfg.sim.physics = getattr(importlib.import_module(module), cls)()
    scene = getattr(cfg, "scene", None)
    if scene is not None and hasattr(scene, "replicate_physics"):
        scene.replicate_physics = True  # without it only env_0 reaches the engine and the build fails
    log.info(
        "%s declares no %s preset: cfg.sim.physics set to %s in code (scene.replicate_physics=True)", task, name, cls
    )
    return cfg


def _is_unknown_physics(message: str, name: str) -> bool:
    # Isaac Lab 3.0: "Unknown preset(s): ovphysx" (no preset of that name anywhere in the cfg) or
    # "Typed preset selector(s) physics=ovphysx did not match ..." (a preset of that name, not physics).
    first = message.splitlines()[0] if message else ""
    unknown = first.startswith("Unknown preset(s):") and name in [n.strip() for n in first.split(":", 1)[1].split(",")]
    return unknown or f"{PHYSICS_KEY}={name} did not match" in message


def _why_not(name: str) -> str:
    if name == "physx":
        return "neither ovphysx nor Isaac Sim is installed"
    missing = [m for m in _NEEDS[name] if not _found(m)]
    return f"missing modules {missing}" + (
        "; Isaac Sim's Kit cannot run kit-less, use physics=ovphysx" if "isaacsim" in missing else ""
    )


def unpin_host_buffers_without_cuda() -> bool:
    """Let ovphysx's pinned host buffers be ordinary host memory when Warp sees no CUDA device.

    Returns:
        True when the allocator was swapped (no CUDA), False when CUDA is there (nothing changed).

    Raises:
        ConfigError: the installed Warp no longer has the shape this relies on (a CPU device with
            ``pinned_allocator``, ``default_allocator`` and ``get_allocator(pinned=...)``): check
            ovphysx on this Warp without CUDA before serving it.
    """
    import warp as wp

    if wp.is_cuda_available():
        return False
    cpu = wp.get_device("cpu")
    pinned = getattr(cpu, "pinned_allocator", None)
    default = getattr(cpu, "default_allocator", None)
    if pinned is default and default is not None:
        return True  # done before in this process
    try:
        shaped = (
            pinned is not None
            and default is not None
            and type(pinned).__name__ == "CpuPinnedAllocator"
            and cpu.get_allocator(pinned=True) is pinned
            and cpu.get_allocator(pinned=False) is default
        )
    except TypeError:
        shaped = False
    if not shaped:
        raise ConfigError(
            f"Warp {getattr(wp, '__version__', '?')} has no CPU pinned_allocator/default_allocator pair as Warp "
            "1.17 has: gym-remote cannot serve ovphysx without CUDA on it (Isaac Lab's ovphysx pins host buffers)"
        )
    cpu.pinned_allocator = default
    log.info("no CUDA device: Warp's pinned host buffers (ovphysx's staging) are ordinary host memory")
    return True
