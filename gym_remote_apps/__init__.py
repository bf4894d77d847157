"""Applications built on gym-remote: the demos, the real-simulator drivers, ``doctor``, the server venvs.

None of this is the library: each module here imports :mod:`gym_remote` and nothing in
``gym_remote`` imports these back (only the command line, ``gym_remote.cli``, does, and the
examples and tests). They are what ``gym-remote demo`` and ``gym-remote doctor`` run, and scripts a
user may copy from:

- :mod:`.demo`: ``gym-remote demo``, the built-in MuJoCo stack-cube task served, driven by the
  scripted expert, recorded and replayed locally;
- :mod:`.isaaclab_stack` and :mod:`.isaaclab_demo`: the same loop on Isaac Lab 3.0's stack task
  (``gym-remote demo --backend isaaclab``);
- :mod:`.metasim_stack`: the same loop on RoboVerse MetaSim (``python -m gym_remote_apps.metasim_stack``);
- :mod:`.expert`: the scripted expert's local benchmark (``python -m gym_remote_apps.expert``);
- :mod:`.doctor`: ``gym-remote doctor``, what this machine can serve;
- :mod:`.venvs`: where ``scripts/build_*_venv.sh`` put the server venvs on this machine.

Arrows: ``venvs`` <- ``doctor``, ``isaaclab_stack`` <- ``isaaclab_demo``, and each of them -> the library.
"""
