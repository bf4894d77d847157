"""Checks of the client classes' public keywords, each error naming the keyword and what it takes.

``RemoteEnv``, ``RemoteVectorEnv`` (so ``gym.make``/``gym.make_vec``) and SB3's ``RemoteVecEnv``
check every keyword here, at construction and before anything starts (no server, no SSH): a wrong
type is a ``TypeError``, a wrong value a ``ValueError``, and the message reads
``RemoteVectorEnv(num_envs=...) takes an int >= 1, got '64' (str)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "AUTORESET_MODES",
    "autoreset_mode_name",
    "check_client_keywords",
    "check_episode_lengths",
    "check_reset_mask",
    "check_vector_keywords",
    "unexpected_keyword",
]

#: The autoreset modes on the wire (HELLO's ``autoreset_mode``), Gymnasium's ``AutoresetMode`` in snake case.
AUTORESET_MODES = ("next_step", "same_step", "disabled")

#: Gymnasium's ``AutoresetMode`` values (``AutoresetMode.SAME_STEP.value == "SameStep"``) by wire name.
_GYMNASIUM_MODE_VALUES = {"NextStep": "next_step", "SameStep": "same_step", "Disabled": "disabled"}


def autoreset_mode_name(mode: Any, error: type[Exception] = ValueError) -> str:
    """The wire name of an autoreset mode given as Gymnasium's ``AutoresetMode``, its value or a wire name.

    ``AutoresetMode.SAME_STEP``, ``"SameStep"`` and ``"same_step"`` are the same mode: Gymnasium's
    vector envs take the first two, and gym-remote has always taken the third.

    Raises:
        error: anything else (``ValueError`` unless told), naming what is taken.
    """
    value = getattr(mode, "value", mode)  # an enum member: its value
    if isinstance(value, str):
        if value in AUTORESET_MODES:
            return value
        if value in _GYMNASIUM_MODE_VALUES:
            return _GYMNASIUM_MODE_VALUES[value]
    shown = repr(mode) if len(repr(mode)) <= 100 else repr(mode)[:100] + "..."
    raise error(
        f"autoreset_mode must be gymnasium.vector.AutoresetMode or one of {', '.join(AUTORESET_MODES)} "
        f"({', '.join(_GYMNASIUM_MODE_VALUES)}), got {shown}"
    )


def check_clip_actions(value: Any) -> None:
    """``clip_actions`` of the SB3 and rsl_rl front ends: ``None`` or a positive finite number.

    Raises:
        ValueError: anything else (a bool included), naming the value.
    """
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if value is not None and not (real and 0 < value < np.inf):
        raise ValueError(f"clip_actions must be a positive finite number, not {value!r}")


def unexpected_keyword(owner: str, name: str, known: Any = ()) -> TypeError:
    """The ``TypeError`` for a keyword ``owner`` does not take, worded as Python words its own.

    Third-party code keys on Python's wording: TorchRL's ``GymEnv`` passes ``frameskip`` and drops it
    only when the error reads ``got an unexpected keyword argument 'frameskip'``. Close matches among
    ``known`` follow (``hostt=``: "Did you mean 'host'?").
    """
    from gym_remote.errors import did_you_mean

    hint = did_you_mean(name, known)  # " Did you mean 'host'?"
    return TypeError(f"{owner}.__init__() got an unexpected keyword argument {name!r}{'.' + hint if hint else ''}")


#: What ``launch=`` takes, said once for every message.
LAUNCH_HELP = (
    "True (start the server over SSH, with launch options as keywords: config=, setup=, python=...), a dict of "
    "those options, 'ray' (servers placed by Ray: servers=, resources=...), or False"
)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:80]}... ({type(value).__name__})" if len(text) > 80 else f"{text} ({type(value).__name__})"


def _fail(owner: str, name: str, value: Any, takes: str, error: type[Exception] = TypeError) -> None:
    raise error(f"{owner}({name}=...) takes {takes}, got {_shown(value)}")


def _int(value: Any) -> bool:
    """A Python or numpy integer, not a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, np.integer))


def _check_count(owner: str, name: str, value: Any, least: int, takes: str) -> None:
    """``value`` is an int (not a bool) of at least ``least``: a TypeError or ValueError naming ``takes``."""
    if not _int(value):
        _fail(owner, name, value, takes)
    if value < least:
        _fail(owner, name, value, takes, ValueError)


def _check_optional_str(owner: str, name: str, value: Any, takes: str) -> None:
    if value is not None and not isinstance(value, str):
        _fail(owner, name, value, takes)


#: The keywords every client class takes, which :func:`check_client_keywords` checks.
CLIENT_KEYWORDS = frozenset(
    {
        "host",
        "port",
        "task",
        "task_kwargs",
        "timeout",
        "connect_timeout",
        "probe_timeout",
        "retries",
        "render_mode",
        "with_state",
        "max_episode_steps",
        "curve_server_key",
        "curve_public_key",
        "curve_secret_key",
        "compression",
        "compress_above",
        "launch",
        "backend",
    }
)


#: The keywords only the vector client takes (with :data:`CLIENT_KEYWORDS`), for "did you mean".
VECTOR_KEYWORDS = frozenset({"num_envs", "hosts", "autoreset_mode", "batch_size"})


def check_client_keywords(owner: str, scope: Mapping[str, Any] | None = None, /, **kw: Any) -> None:
    """Check the keywords every client class takes (those given; absent ones are not checked).

    Args:
        owner: the class named in errors.
        scope: a constructor's ``locals()`` taken before it assigns anything: its keywords among
            :data:`CLIENT_KEYWORDS` are checked (so each constructor does not list them again).
        kw: more keywords to check, by name.

    Raises:
        TypeError: a keyword of the wrong type (named, with what it takes).
        ValueError: a keyword of the right type but a wrong value (a port out of range, a negative
            timeout, an unknown backend, ``launch='ray'``...).
    """
    if scope is not None:
        kw = {**{k: v for k, v in scope.items() if k in CLIENT_KEYWORDS}, **kw}
    if "host" in kw:
        _check_optional_str(owner, "host", kw["host"], "a host name or address (str), or None for a local server")
        if isinstance(kw["host"], str) and not kw["host"].strip():
            _fail(owner, "host", kw["host"], "a host name or address, or None for a local server", ValueError)
    if "port" in kw:
        port = kw["port"]
        if not _int(port):
            _fail(owner, "port", port, "a TCP port (an int from 1 to 65535)")
        if not 1 <= int(port) <= 65535:
            _fail(owner, "port", port, "a TCP port (an int from 1 to 65535)", ValueError)
    if "task" in kw:
        _check_optional_str(owner, "task", kw["task"], "an env id (str) or None for the server's default")
    if "task_kwargs" in kw:
        value = kw["task_kwargs"]
        if value is not None and (not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value)):
            _fail(owner, "task_kwargs", value, "a dict with str keys (the env's keyword arguments) or None")
    for name in ("timeout", "connect_timeout", "probe_timeout"):
        if name in kw:
            value = kw[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                _fail(owner, name, value, "a number of seconds > 0")
            if not (value > 0 and math.isfinite(value)):
                _fail(owner, name, value, "a number of seconds > 0", ValueError)
    if "retries" in kw:
        _check_count(owner, "retries", kw["retries"], 0, "an int >= 0 (re-sends of idempotent requests)")
    if "render_mode" in kw:
        _check_optional_str(owner, "render_mode", kw["render_mode"], "a render mode (str, e.g. 'rgb_array') or None")
    if "with_state" in kw and not isinstance(kw["with_state"], bool):
        _fail(owner, "with_state", kw["with_state"], "True or False")
    if "max_episode_steps" in kw and kw["max_episode_steps"] is not None:
        value = kw["max_episode_steps"]
        if not _int(value):
            _fail(owner, "max_episode_steps", value, "an int >= 1 or None")
        if value < 1:
            _fail(owner, "max_episode_steps", value, "an int >= 1 or None", ValueError)
    for name in ("curve_server_key", "curve_public_key", "curve_secret_key"):
        value = kw.get(name)
        if value is None:
            continue
        if not isinstance(value, (bytes, str)):
            _fail(owner, name, value, "a Z85 CURVE key (40 characters, str or bytes) or None")
        if len(value) != 40:
            _fail(owner, name, value, "a Z85 CURVE key of 40 characters (zmq.curve_keypair())", ValueError)
    if kw.get("compression") is not None:
        from gym_remote.protocol.compression import CODECS, available_codecs

        value = kw["compression"]
        if value not in CODECS:
            _fail(owner, "compression", value, f"None or one of {', '.join(map(repr, CODECS))}", ValueError)
        if value not in available_codecs():
            raise ValueError(
                f"{owner}(compression={value!r}) needs the {CODECS[value]} library, which is not installed: "
                "pip install 'gym-remote[compress]'"
            )
    if "compress_above" in kw:
        _check_count(owner, "compress_above", kw["compress_above"], 0, "an int >= 0 (bytes: smaller frames travel raw)")
    if (kw.get("curve_public_key") is None) != (kw.get("curve_secret_key") is None):
        raise ValueError(f"{owner}: give curve_public_key and curve_secret_key together, or neither (generated)")
    if "launch" in kw:
        launch = kw["launch"]
        if isinstance(launch, str) and launch != "ray":
            raise ValueError(f"{owner}(launch=...) takes {LAUNCH_HELP}, got {launch!r}")
        if not isinstance(launch, (bool, Mapping, str)):
            _fail(owner, "launch", launch, LAUNCH_HELP)
    if "backend" in kw:
        from gym_remote.config import BACKENDS as backends
        from gym_remote.errors import did_you_mean

        if not isinstance(kw["backend"], str):
            _fail(owner, "backend", kw["backend"], f"one of {', '.join(backends)}")
        if kw["backend"] not in backends:
            raise ValueError(
                f"{owner}(backend=...) takes one of {', '.join(backends)}, got {kw['backend']!r}."
                f"{did_you_mean(kw['backend'], backends)}"
            )


def check_vector_keywords(owner: str, **kw: Any) -> None:
    """Check the keywords only vector clients take: ``num_envs`` and ``hosts``.

    Raises:
        TypeError, ValueError: as :func:`check_client_keywords`.
    """
    if "num_envs" in kw:
        _check_count(owner, "num_envs", kw["num_envs"], 1, "an int >= 1 (the number of sub-envs)")
    hosts = kw.get("hosts")
    if hosts is not None:
        if isinstance(hosts, (str, bytes)) or not isinstance(hosts, Sequence):
            _fail(owner, "hosts", hosts, "a list of 'host:port' strings (one per server), or None")
        if not hosts:
            _fail(owner, "hosts", hosts, "a non-empty list of 'host:port' strings, or None", ValueError)
        for h in hosts:
            if not isinstance(h, str):
                _fail(owner, "hosts", hosts, "a list of 'host:port' strings (one per server), or None")


def check_reset_mask(
    mask: Any, num_envs: int | None, type_error: type[Exception], value_error: type[Exception]
) -> None:
    """Gymnasium's checks of ``options["reset_mask"]`` (``SyncVectorEnv.reset``), raising the given classes.

    Raises:
        type_error: not a numpy array, or not of dtype bool.
        value_error: a single env, not of shape ``(num_envs,)``, or no True entry.
    """
    if num_envs is None:
        raise value_error("reset_mask is for vector envs: a single env resets whole")
    if not isinstance(mask, np.ndarray):
        raise type_error(f"`options['reset_mask']` must be a numpy array, got {type(mask)}")
    if mask.shape != (num_envs,):
        raise value_error(f"`options['reset_mask']` must have shape `({num_envs},)`, got {mask.shape}")
    if mask.dtype != np.bool_:
        raise type_error(f"`options['reset_mask']` must have `dtype=np.bool_`, got {mask.dtype}")
    if not mask.any():
        raise value_error(
            f"`options['reset_mask']` must contain a boolean array with at least one True value, got reset_mask={mask}"
        )


def check_episode_lengths(
    lengths: Any, num_envs: int, limit: int | None, type_error: type[Exception], value_error: type[Exception]
) -> np.ndarray:
    """Episode step counts a client writes (``set_episode_lengths``), as ``int64`` ``(num_envs,)``.

    Args:
        lengths: a numpy integer array (or a list of ints) of shape ``(num_envs,)``.
        limit: the largest count taken (the episode's step limit), or ``None``: at most ``2**31 - 1``.

    Raises:
        type_error: not an integer array (bools and floats included).
        value_error: not of shape ``(num_envs,)``, or a count below 0 or above ``limit``.
    """
    if isinstance(lengths, list) and all(type(v) is int for v in lengths):
        lengths = np.array(lengths, dtype=np.int64) if lengths else np.zeros(0, np.int64)
    if not isinstance(lengths, np.ndarray) or lengths.dtype.kind not in "iu":
        shown = lengths.dtype if isinstance(lengths, np.ndarray) else type(lengths).__name__
        raise type_error(f"episode lengths must be an integer numpy array, got {shown}")
    if lengths.shape != (num_envs,):
        raise value_error(f"episode lengths must have shape ({num_envs},), got {lengths.shape}")
    top = (2**31 - 1) if limit is None else int(limit)
    if num_envs and (int(lengths.min()) < 0 or int(lengths.max()) > top):
        raise value_error(
            f"episode lengths must lie in [0, {top}], got values from {int(lengths.min())} to {int(lengths.max())}"
        )
    return lengths.astype(np.int64, copy=False)
