"""What an Isaac Lab client may set in a task's env cfg, checked whatever the spelling.

A client reaches the cfg three ways, all in ``task_kwargs``: a keyword (``{"episode_length_s": 3}``),
a dotted keyword (``{"scene.env_spacing": 3}``) and Isaac Lab's Hydra overrides
(``{"overrides": ["env.episode_length_s=3", "physics=ovphysx"]}``). Each is reduced to one cfg path
(``env.`` dropped: ``episode_length_s``, ``scene.env_spacing``, ``physics``) and checked three times:

1. Before anything is parsed, each override is read with Hydra's own grammar (hydra-core's
   ``OverridesParser``, the parser Isaac Lab hands non-``env.`` overrides to): only a plain
   ``key=value`` is accepted (no ``+``/``++``/``~``, no ``@package``, no sweeps, never a
   ``hydra.*`` key), and, unless the server runs with ``--allow-client-paths``, only a number, a
   bool, ``null`` or a bare word: a quoted string, a list, a dict, an interpolation (``${oc.env:VAR}``
   reads the server's environment), and a word that names a file (``/x``, ``~/x``, ``./x``, ``a/../b``,
   ``C:\\x``) or code (``module:attr``) are refused. Without hydra-core only ``key=number|bool|word``.
2. Each path must be on the allow-list: :data:`CLIENT_SETTINGS` plus the server's
   ``--allow-kwargs PATTERN`` (fnmatch patterns of cfg paths, ``scene.tiled_camera.*``). Hydra keys
   are checked before Isaac Lab parses anything; dotted keywords after the cfg is built, so that a
   misspelt one is answered with the attribute it lacks rather than with a refusal.
3. The final cfg, every override and keyword applied, must still have the server's sub-env count
   (``scene.num_envs``: the client asks for sub-envs with ``num_envs``, capped by ``--max-envs``) and
   device (``sim.device``), whatever route tried to change them and whatever ``--allow-kwargs`` says.

Camera sizes (``scene.tiled_camera.width``) are not on the default list: pixels times sub-envs is a
GPU memory budget, like ``num_envs``, so the operator opts in (``--allow-kwargs 'scene.*camera*.*'``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from gym_remote.errors import BadRequestError, clip
from gym_remote.session import SessionLimits
from gym_remote.session.limits import looks_like_path

__all__ = [
    "CLIENT_SETTINGS",
    "SELECTORS",
    "check_allowed",
    "check_final_cfg",
    "override_paths",
    "setting_path",
]

#: Cfg paths (fnmatch patterns) any client may set; ``serve --allow-kwargs PATTERN`` adds more.
#: Harmless to the server: the episode length, Isaac Lab 3.x's final observations, the seed, the
#: spacing of sub-envs, reward weights, and the physics engine (``physics=NAME``, Isaac Lab's
#: typed preset selector, among the engines this venv runs).
CLIENT_SETTINGS = (
    "physics",
    "episode_length_s",
    "compute_final_obs",
    "seed",
    "scene.env_spacing",
    "rewards.*.weight",
)

#: Isaac Lab's preset selectors: ``NAME=value`` picks presets rather than setting ``env.NAME``.
SELECTORS = ("physics", "renderer", "presets")

#: Without hydra-core: the only override shape accepted (a dotted key, a number, bool or bare word).
_TRIVIAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=[A-Za-z0-9_.+-]*$")


def setting_path(key: str) -> str:
    """The cfg path an override key sets: ``env.scene.num_envs`` -> ``scene.num_envs``; selectors as they are."""
    return key[len("env.") :] if key.startswith("env.") else key


def _refuse(text: str, why: str, fix: str) -> BadRequestError:
    return BadRequestError(f"task keyword overrides: {clip(repr(text), 200)} {why}; {fix}")


_PATHS_FIX = "give a number, a bool or a bare word, or let the server's operator set it (serve --override)"


def _check_value(text: str, value: Any) -> None:
    """Refuse a parsed override value that names a file or code, or reads the server's environment."""
    if isinstance(value, (bool, int, float)) or value is None:
        return
    kind = type(value).__name__
    if kind == "QuotedString":
        raise _refuse(text, "is a quoted string (it may name a file on the server)", _PATHS_FIX)
    if isinstance(value, (list, dict)):
        raise _refuse(text, f"is a {kind} (its items may name files on the server)", _PATHS_FIX)
    if not isinstance(value, str):
        raise _refuse(text, f"is a {kind}", _PATHS_FIX)
    if "${" in value:
        raise _refuse(text, "is an interpolation (it reads the server's environment or config)", _PATHS_FIX)
    if looks_like_path(value) or "/" in value or "\\" in value:
        raise _refuse(text, "names a file on the server", _PATHS_FIX + ", or allow it (serve --allow-client-paths)")
    if ":" in value:
        raise _refuse(text, "names code on the server (module:attribute)", _PATHS_FIX)


def override_paths(overrides: Iterable[str], allow_paths: bool) -> list[str]:
    """Read a client's Hydra overrides with Hydra's grammar: the cfg path each sets, in order.

    Args:
        overrides: ``key=value`` strings (already checked to be a list of strings).
        allow_paths: the server runs with ``--allow-client-paths``: any value Hydra's grammar takes.

    Raises:
        BadRequestError: an override Hydra cannot parse, one that is not a plain ``key=value``, a
            ``hydra.*`` key, or (without ``allow_paths``) a value that names a file or code or reads
            the server's environment; without hydra-core, anything but ``key=number|bool|word``.
    """
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.core.override_parser.types import OverrideType
    except ImportError:
        return [_trivial_path(text, allow_paths) for text in overrides]
    parser = OverridesParser.create()
    paths = []
    for text in overrides:
        try:
            (parsed,) = parser.parse_overrides([text])
        except Exception as exc:  # Hydra's OverrideParseException, or anything its grammar raises
            raise _refuse(text, f"is not a Hydra override ({clip(str(exc), 200)})", "write key=value") from None
        if parsed.type is not OverrideType.CHANGE or parsed.package is not None:
            raise _refuse(text, "adds, deletes or re-packages a key", "clients may only change one: key=value")
        if parsed.is_sweep_override():
            raise _refuse(text, "is a sweep (several values)", "give one value")
        key = parsed.key_or_group
        if key == "hydra" or key.startswith("hydra."):
            raise _refuse(text, "configures Hydra itself (its working directory, its files)", "leave hydra.* out")
        if not allow_paths:
            _check_value(text, parsed._value)  # the parsed value, quoting kept (value() strips it)
        paths.append(setting_path(key))
    return paths


def _trivial_path(text: str, allow_paths: bool) -> str:
    if allow_paths or _TRIVIAL.match(text):
        key, _, value = text.partition("=")
        if not allow_paths and looks_like_path(value):
            raise _refuse(text, "names a file on the server", _PATHS_FIX)
        return setting_path(key.strip())
    raise _refuse(
        text,
        "cannot be checked: this server's Python has no hydra-core to parse it",
        "give key=number|bool|word, or install hydra-core on the server",
    )


def check_allowed(paths: Iterable[str], limits: SessionLimits) -> None:
    """Refuse cfg paths that are neither in :data:`CLIENT_SETTINGS` nor allowed by ``serve --allow-kwargs``."""
    refused = [p for p in dict.fromkeys(paths) if not limits.allows(p, CLIENT_SETTINGS)]
    if refused:
        extra = sorted(limits.allowed_kwargs or ())
        raise BadRequestError(
            f"task keywords {clip(repr(refused), 300)} set env-cfg values this server does not let clients set; "
            f"it allows {list(CLIENT_SETTINGS) + extra} (fnmatch patterns of cfg paths). The server's operator "
            "widens the list with serve --allow-kwargs PATTERN (or allow_kwargs in a task config)"
        )


def check_final_cfg(cfg: Any, num_envs: int, device: str, client_kwargs: Mapping[str, Any]) -> None:
    """Refuse a cfg whose sub-env count or device is no longer the server's, once everything is applied.

    Raises:
        BadRequestError: ``cfg.scene.num_envs != num_envs`` or ``cfg.sim.device != device``.
    """
    got_envs = getattr(getattr(cfg, "scene", None), "num_envs", num_envs)
    if got_envs != num_envs:
        raise BadRequestError(
            f"task_kwargs {clip(repr(dict(client_kwargs)), 300)} make scene.num_envs {clip(repr(got_envs), 50)}, not "
            f"the {num_envs} sub-envs this session asked for: the number of sub-envs is asked with num_envs "
            "(RemoteVectorEnv(num_envs=...)), within the server's serve --max-envs"
        )
    got_device = getattr(getattr(cfg, "sim", None), "device", device)
    if str(got_device) != device:
        raise BadRequestError(
            f"task_kwargs {clip(repr(dict(client_kwargs)), 300)} make sim.device {clip(repr(got_device), 50)}: the "
            f"device is this server's setting ({device!r}; serve --kwargs '{{\"device\": ...}}'), clients may not "
            "change it"
        )
