"""Timing helpers: interleaved blocks, percentiles, ratios to a floor, and a straight-line fit.

This machine class is noisy (2 cores, process switching dominates a loopback round trip), so every
figure is a ratio of two things measured in the same run, in interleaved blocks: drift and bursts of
load from other processes hit the figure and its floor alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["Timing", "fit_line", "fit_line_relative", "interleave", "interleave_for", "progress"]


@dataclass
class Timing:
    """Samples of one timed call, in seconds."""

    name: str
    samples: list[float] = field(default_factory=list)

    def us(self, q: float) -> float:
        """The ``q``-th percentile in microseconds (NaN without samples)."""
        return float(np.percentile(self.samples, q)) * 1e6 if self.samples else float("nan")

    @property
    def p50(self) -> float:
        return self.us(50)

    @property
    def p99(self) -> float:
        return self.us(99)

    def summary(self, floor: Timing | None = None) -> dict[str, Any]:
        """p50/p90/p99 (us) and, against ``floor``, the ratios of p50 to p50 and p99 to p99."""
        out: dict[str, Any] = {"p50_us": self.p50, "p90_us": self.us(90), "p99_us": self.p99, "n": len(self.samples)}
        if floor is not None:
            out["p50_ratio"] = self.p50 / floor.p50
            out["p99_ratio"] = self.p99 / floor.p99
        return out


def progress(total: float, desc: str, unit: str = "call") -> tqdm:
    """The progress bar every long figure shows (on stderr, gone when done)."""
    from tqdm import tqdm  # here, not at import: `serve` builds the bench parser on core-only installs

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


def interleave(
    funcs: dict[str, Callable[[], Any]], total: int, block: int = 250, desc: str = "bench", warmup: int = 50
) -> dict[str, Timing]:
    """Run each function ``total`` times in alternating blocks, so drift hits all of them alike."""
    for fn in funcs.values():  # caches, lazy imports, TCP windows
        for _ in range(warmup):
            fn()
    timings = {name: Timing(name) for name in funcs}
    perf = time.perf_counter
    with progress(total * len(funcs), desc) as bar:
        done = 0
        while done < total:
            n = min(block, total - done)
            for name, fn in funcs.items():
                samples = timings[name].samples
                for _ in range(n):
                    t0 = perf()
                    fn()
                    samples.append(perf() - t0)
                bar.update(n)
            done += n
    return timings


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = fixed + per_unit * x``: (fixed, per_unit)."""
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(intercept), float(slope)


def fit_line_relative(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """``y = fixed + per_unit * x`` minimising the *relative* residuals ``(y - fit) / y``: (fixed, per_unit).

    On this machine a p50 step time's run-to-run scatter grows with the time itself (scheduling and
    load from other processes stretch a 10 ms step by milliseconds and a 0.2 ms step by tens of us).
    Unweighted least squares over N = 1..1024 then lets the largest N's noise set the intercept, a
    quantity a hundred times smaller than that noise. Weighting each point by ``1 / y`` (its error
    taken as proportional to its size) gives every N the same say, so the intercept follows the
    small-N points that actually measure it, while the large-N points still set the slope.
    """
    y = np.asarray(ys, float)
    slope, intercept = np.polyfit(np.asarray(xs, float), y, 1, w=1.0 / y)
    return float(intercept), float(slope)


def interleave_for(
    funcs: dict[str, Callable[[], Any]], seconds: float, rounds: int = 4, desc: str = "bench", warmup: int = 3
) -> dict[str, Timing]:
    """Run each function for ``seconds`` in total, in ``rounds`` alternating slices (calls of any length)."""
    for fn in funcs.values():
        for _ in range(warmup):
            fn()
    timings = {name: Timing(name) for name in funcs}
    perf = time.perf_counter
    slice_s = seconds / rounds
    with progress(rounds * len(funcs), desc, unit="slice") as bar:
        for _ in range(rounds):
            for name, fn in funcs.items():
                samples = timings[name].samples
                end = perf() + slice_s
                while True:
                    t0 = perf()
                    fn()
                    t1 = perf()
                    samples.append(t1 - t0)
                    if t1 >= end:
                        break
                bar.update(1)
    return timings
