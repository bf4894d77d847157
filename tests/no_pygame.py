"""Imported by a test server (``serve --import tests.no_pygame``): pygame is not importable in that process,
as on a server installed without Gymnasium's classic-control extra."""

import sys

sys.modules["pygame"] = None  # type: ignore[assignment]  # `import pygame` now raises ImportError
