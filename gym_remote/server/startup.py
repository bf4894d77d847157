"""What ``gym-remote serve`` checks before it binds: the factory's own start-up check, whether an
address is reachable from other machines (then CURVE or ``--insecure`` is required), and that the
CURVE secret key file is private to its owner."""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Callable
from urllib.parse import urlsplit

from gym_remote.errors import ConfigError
from gym_remote.session import Session, SessionOptions

__all__ = ["SessionFactory", "is_loopback_address", "load_curve_secret", "validate_factory"]

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


def load_curve_secret(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """The (public, secret) Z85 keys of a ``zmq.auth`` secret certificate, refused when others may read it.

    Anyone who reads the secret key can pose as the server to its clients, so a file that its group
    or other users may read (or write) is refused, as OpenSSH refuses such a private key; on Windows,
    where modes do not say who may read, the file is not checked.

    Raises:
        ConfigError: the file is open to its group or others (the message names it and ``chmod 600``),
            or it holds no secret key.
        OSError: the file cannot be read.
    """
    import zmq.auth

    mode = stat.S_IMODE(os.stat(path).st_mode)
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(
            f"CURVE secret key {os.fspath(path)!r} is accessible by its group or others (mode {mode:04o}): "
            f"anyone who reads it can pose as this server. Make it private: chmod 600 {os.fspath(path)}"
        )
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise ConfigError(f"{os.fspath(path)!r} holds no CURVE secret key (give the .key_secret file)")
    return public, secret
