"""Argument types the sub-commands share: HOST:PORT, a JSON object, a set of names (a positive count: config)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _host_port(text: str) -> tuple[str, int]:
    from gym_remote.client import parse_host_port
    from gym_remote.config import DEFAULT_PORT

    try:
        return parse_host_port(text, DEFAULT_PORT)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _json_map(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"frame_skip\": 4}'")
    return value


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())
