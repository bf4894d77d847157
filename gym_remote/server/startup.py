"""What ``gym-remote serve`` checks before it binds: the factory's own start-up check, and whether an
address is reachable from other machines (then CURVE or ``--insecure`` is required)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from gym_remote.session import Session, SessionOptions

#: Builds the env(s) of one session from what the client asked for at HELLO. A factory may also
#: have a ``validate()`` method: see :func:`validate_factory`.
SessionFactory = Callable[[SessionOptions], Session]


def validate_factory(factory: SessionFactory) -> None:
    """Run the factory's start-up check, ``factory.validate()``, when it has one.

    This is the backend-facing hook that lets ``gym-remote serve`` refuse, before it prints READY,
    a task it was told to serve but cannot (an unknown id, a misspelled keyword): each backend
    checks what it can without a client (the ``gymnasium`` and ``python`` backends build one env).
    A factory without ``validate`` is not checked, so plain callables keep working.

    Raises:
        ConfigError: (a ``ValueError``) raised by the backend, saying what is wrong and what to do.
    """
    check = getattr(factory, "validate", None)
    if callable(check):
        check()


def is_loopback_address(address: str) -> bool:
    """True for ``ipc://``/``inproc://`` and TCP endpoints on 127.0.0.0/8, ::1 or localhost."""
    scheme = address.split("://", 1)[0]
    if scheme in ("ipc", "inproc"):
        return True
    host = urlsplit(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a DNS name: may be reachable from outside
