"""What one client may make a server build: :class:`SessionLimits` (sizes, keywords, file paths).

Keywords a client may set are matched against fnmatch patterns (``serve --allow-kwargs PATTERN``):
a backend whose keywords reach an env's constructor (gymnasium, python) allows any keyword until the
operator lists the allowed ones; a backend whose keywords reach a simulator's config (isaaclab) has a
built-in list of harmless settings that the operator's patterns add to (see :meth:`SessionLimits.allows`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from gym_remote.errors import BadRequestError, clip

if TYPE_CHECKING:
    from gym_remote.session.options import SessionOptions


__all__ = ["SessionLimits", "looks_like_path"]


def looks_like_path(text: str) -> bool:
    """Whether a client's string names a file on the server: absolute, home-relative, dot-relative
    (Gymnasium's MuJoCo envs open ``.``- and ``/``-prefixed ``xml_file`` values as they are), a
    Windows drive, or a ``..`` step out of wherever the env joins it to; or reads the server's
    environment (an OmegaConf interpolation, ``${oc.env:VAR}``). For ``key=value`` strings (Isaac
    Lab's Hydra overrides, which the isaaclab backend also reads with Hydra's grammar), the value
    counts too."""
    if "${" in text:
        return True
    if "=" in text and text != text.rpartition("=")[2] and looks_like_path(text.rpartition("=")[2]):
        return True
    if text.startswith(("/", "~", ".", "\\")) or (len(text) > 2 and text[1] == ":" and text[2] in "/\\"):
        return True
    return ".." in text.replace("\\", "/").split("/")


def _paths_in(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)] if looks_like_path(value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths_in(v, f"{where}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _paths_in(v, f"{where}[{i}]")]
    return []


@dataclass(frozen=True)
class SessionLimits:
    """What one client may make a server build, set by ``gym-remote serve`` options.

    A HELLO past a limit is refused with a :class:`~gym_remote.errors.BadRequestError` that names
    the limit and the serve option that changes it. Sizes are checked in :meth:`SessionOptions.from_hello`
    (before any backend runs); keywords in :func:`choose_task` (after the backend's own checks).
    """

    #: Sub-envs one session may ask for (``serve --max-envs``). The gymnasium and python backends
    #: build each sub-env in turn on the server's one thread, which serves nobody else meanwhile.
    max_envs: int = 1024
    #: Bytes of ``task_kwargs`` as encoded on the wire (``serve --max-kwargs-bytes``).
    max_kwargs_bytes: int = 64 * 1024
    #: fnmatch patterns of the keywords a client may set (``serve --allow-kwargs PATTERN``, repeatable,
    #: or comma-separated; ``''``: none); ``None``: the backend's default (see :meth:`allows`).
    allowed_kwargs: frozenset[str] | None = None
    #: Keywords the server fixed (its ``--kwargs`` under ``--fixed-task``): a client may not change them.
    fixed_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Whether client keywords may hold file paths (``serve --allow-client-paths``); by default a
    #: string that names a server file (``/x``, ``~/x``, ``./x``, ``a/../b``) is refused.
    allow_client_paths: bool = False

    def check_size(self, opts: SessionOptions) -> None:
        """Refuse a ``num_envs`` or ``task_kwargs`` past the limits (BadRequestError naming the option)."""
        if opts.num_envs is not None and opts.num_envs > self.max_envs:
            raise BadRequestError(
                f"num_envs={opts.num_envs} exceeds this server's limit of {self.max_envs} sub-envs per session "
                f"(serve --max-envs raises it); split the batch over several sessions or servers (hosts=[...])"
            )
        if opts.task_kwargs:
            from gym_remote.protocol import encode

            header, buffers = encode(opts.task_kwargs)
            size = len(header) + sum(memoryview(b).nbytes for b in buffers)
            if size > self.max_kwargs_bytes:
                raise BadRequestError(
                    f"task_kwargs of {size} bytes exceed this server's limit of {self.max_kwargs_bytes} "
                    "(serve --max-kwargs-bytes raises it)"
                )

    def allows(self, name: str, builtin: Collection[str] | None = None) -> bool:
        """Whether a client may set keyword (or cfg path) ``name``.

        Args:
            name: the keyword, or for isaaclab the cfg path it sets (``scene.env_spacing``).
            builtin: the backend's own patterns of harmless settings, which ``--allow-kwargs`` adds
                to; ``None``: a backend whose keywords reach an env's constructor, where any keyword
                is allowed until ``--allow-kwargs`` lists the allowed ones.
        """
        if builtin is None and self.allowed_kwargs is None:
            return True
        patterns = (*(builtin or ()), *(self.allowed_kwargs or ()))
        return any(fnmatchcase(name, pattern) for pattern in patterns)

    def check_kwargs(self, kwargs: Mapping[str, Any], check_allowed: bool = True) -> None:
        """Refuse keywords the server fixed or did not allow, and file paths (BadRequestError).

        ``check_allowed=False`` leaves the allow-list to the backend (isaaclab checks cfg paths).
        """
        changed = sorted(k for k, v in kwargs.items() if k in self.fixed_kwargs and not _same(v, self.fixed_kwargs[k]))
        if changed:
            raise BadRequestError(
                f"task keywords {changed} are fixed by this server (serve --fixed-task with --kwargs or a task "
                "config); leave them out"
            )
        if check_allowed and self.allowed_kwargs is not None:
            refused = sorted(k for k in kwargs if not self.allows(k) and k not in self.fixed_kwargs)
            if refused:
                allowed = ", ".join(sorted(self.allowed_kwargs)) or "none"
                raise BadRequestError(
                    f"task keywords {clip(repr(refused), 300)} are not allowed by this server; it allows: "
                    f"{allowed} (serve --allow-kwargs, or allow_kwargs in a task config)"
                )
        if not self.allow_client_paths:
            paths = _paths_in(dict(kwargs), "task_kwargs")
            if paths:
                where, value = paths[0]
                raise BadRequestError(
                    f"{clip(where, 200)}={clip(repr(value), 200)} names a file on the server (or, as ${{...}}, reads "
                    "its environment), which clients may not do; give a bare file name the env resolves itself, or "
                    "let the server's operator set it "
                    "(serve --kwargs), or allow it (serve --allow-client-paths)"
                )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays compare element-wise: not the same keyword value
        return False
