"""Deprecated: moved to :mod:`gym_remote_apps.metasim_stack`; this alias goes in the next release."""

from gym_remote._moved import moved

moved("gym_remote.tasks.metasim_stack", "gym_remote_apps.metasim_stack", __name__)
