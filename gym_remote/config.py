"""Configuration as dataclasses, loaded from YAML files in ``configs/`` and overridable by kwargs.

``load(HostConfig, "configs/hosts/gpu-box.yaml", port=6000)`` reads the file, refuses keys the
dataclass does not have (a typo should fail loudly, not be ignored), then applies the keyword
overrides. A bare name such as ``"gpu-box"`` is looked up in ``configs/hosts/`` of the working
directory, then of the source checkout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

#: The repository's configs/ folder (present in a source checkout or editable install).
CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"


def find_config(name: str | Path, kind: str) -> Path:
    """Resolve a config path, or a bare name inside ``configs/<kind>/``."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    for root in (Path.cwd() / "configs", CONFIG_ROOT):
        for candidate in (root / kind / path, root / kind / f"{path}.yaml"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no config {str(name)!r}: not a file, and not in configs/{kind}/")


def load(cls: type[T], source: str | Path | Mapping[str, Any] | None = None, kind: str = "", **overrides: Any) -> T:
    """Build ``cls`` from a YAML file (or mapping), then apply non-None keyword overrides."""
    data: dict[str, Any] = {}
    if isinstance(source, Mapping):
        data = dict(source)
    elif source is not None:
        with open(find_config(source, kind), encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"config {source} must be a YAML mapping")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown keys {unknown} in {cls.__name__} config {source}; known: {sorted(names)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(data) - names)
    if unknown:
        raise TypeError(f"unknown {cls.__name__} options {unknown}; known: {sorted(names)}")
    return cls(**data)


@dataclass
class TaskConfig:
    """A task served by a backend (``configs/tasks/*.yaml``)."""

    backend: str = "gymnasium"
    task: str | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int | None = None
    #: Serve only this task, and these ``task_kwargs`` as given (clients may not change them).
    fixed_task: bool = False
    #: The only keywords clients may set (``None``: any; ``[]``: none).
    allow_kwargs: list[str] | None = None
    name_map: str | dict[str, Any] | None = None  # for MujocoReplayWrapper
    model: str | None = None  # local MJCF for replay
    description: str = ""
