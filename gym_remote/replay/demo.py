"""Deprecated: moved to :mod:`gym_remote_apps.demo`; this alias goes in the next release."""

from gym_remote._moved import moved

moved("gym_remote.replay.demo", "gym_remote_apps.demo", __name__)
