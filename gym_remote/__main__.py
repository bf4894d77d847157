"""``python -m gym_remote``: the same as the ``gym-remote`` command."""

from gym_remote.cli import main

raise SystemExit(main())
