"""STAND-IN for ``metasim.task.registry`` (same names and case-insensitive lookup as the real one)."""

from __future__ import annotations

from importlib import import_module

TASK_REGISTRY: dict[str, type] = {}


def register_task(*names: str):
    def decorator(cls: type) -> type:
        for name in names:
            TASK_REGISTRY[name.strip().lower()] = cls
        return cls

    return decorator


def get_task_class(name: str) -> type:
    if not TASK_REGISTRY:
        import_module("metasim.task.stack_cube")  # the real registry discovers task packages here
    try:
        return TASK_REGISTRY[name.strip().lower()]
    except KeyError as exc:
        raise KeyError(f"Unknown task '{name}'. Registered tasks: {', '.join(sorted(TASK_REGISTRY))}") from exc
