"""The venvs that ``scripts/build_*_venv.sh`` build, found by name on this machine.

Isaac Lab 3.0 and RoboVerse MetaSim each pin what gym-remote's client side must not share (Isaac
Lab: numpy>=2, pillow>=12.3, mujoco 3.12 through Newton; MetaSim: mujoco 3.17 for dm_control), so
each runs its server from a venv of its own under ``$GYM_REMOTE_VENVS`` (default
``~/.cache/gym-remote/venvs``), exactly as a GPU box would. Pass :func:`server_python` to
:class:`~gym_remote.local.LocalServer` as ``python=`` to serve from one. The ``ray`` venv is a
client's, not a server's: Ray 2.60's RLlib pins Gymnasium 1.2, so RLlib drivers (and the tests of
the Ray server pool) run there.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SERVER_VENVS", "isaaclab_asset_root", "server_python", "venv_root"]

#: name -> (folder under the venv root, the command that builds it from a source checkout)
SERVER_VENVS = {
    "isaaclab": ("isaaclab-3.0.0", "bash scripts/build_isaaclab_venv.sh"),
    "metasim": ("metasim-dd8ff06", "bash scripts/build_metasim_venv.sh"),
    "ray": ("ray-2.60.0", "bash scripts/build_ray_venv.sh"),
}


def venv_root() -> Path:
    return Path(os.environ.get("GYM_REMOTE_VENVS") or Path.home() / ".cache" / "gym-remote" / "venvs")


def server_python(name: str) -> str:
    """The Python of venv ``name`` (``"isaaclab"``, ``"metasim"`` or ``"ray"``).

    Raises:
        KeyError: an unknown venv name.
        FileNotFoundError: the venv is not built; the message gives the command that builds it.
    """
    if name not in SERVER_VENVS:
        raise KeyError(f"unknown server venv {name!r}; known: {sorted(SERVER_VENVS)}")
    folder, command = SERVER_VENVS[name]
    python = venv_root() / folder / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"the {name} server venv is missing ({python}); build it with `{command}`")
    return str(python)


def isaaclab_asset_root() -> str:
    """The offline asset mirror that ``scripts/build_isaaclab_venv.sh`` writes beside its venv.

    Raises:
        FileNotFoundError: not built yet; the message gives the command.
    """
    python = Path(server_python("isaaclab"))
    root = python.parent.parent / "assets"
    if not root.is_dir():
        command = SERVER_VENVS["isaaclab"][1]
        raise FileNotFoundError(f"no offline Isaac Lab assets at {root}; build them with `{command}`")
    return str(root)
