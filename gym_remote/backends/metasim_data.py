"""Moved to :mod:`gym_remote.backends.roboverse.data`; this name stays importable and runnable
(``python -m gym_remote.backends.metasim_data --out DIR``)."""

from gym_remote.backends.roboverse.data import *  # noqa: F403
from gym_remote.backends.roboverse.data import __all__, main  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
