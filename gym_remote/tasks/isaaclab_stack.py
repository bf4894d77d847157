"""Deprecated: moved to :mod:`gym_remote_apps.isaaclab_stack`; this alias goes in the next release."""

from gym_remote._moved import moved

moved("gym_remote.tasks.isaaclab_stack", "gym_remote_apps.isaaclab_stack", __name__)
