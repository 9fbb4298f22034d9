"""A figure, its goal, and the two ways a bench run reports them: a table and a JSON document.

Every figure is the median of several repetitions (the machine is a small shared VM whose timings
vary by tens of percent between runs, so one sample proves nothing).  A figure that has a reference
carries the reference's median beside it and their ratio; a figure that has a goal says "met" or
"missed"; a figure that could not be measured says why ("n/a (reason)") instead of a number.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

GoalOn = Literal["value", "ratio"]


@dataclasses.dataclass(frozen=True)
class Goal:
    """A threshold on a figure's value or on its ratio to the reference."""

    on: GoalOn
    at_least: float | None = None
    at_most: float | None = None

    def met(self, figure: Figure) -> bool | None:
        subject = figure.value if self.on == "value" else figure.ratio
        if subject is None:
            return None
        if self.at_least is not None and subject < self.at_least:
            return False
        return not (self.at_most is not None and subject > self.at_most)

    def text(self, unit: str) -> str:
        if self.on == "ratio":
            limit = f"{self.at_least:g}" if self.at_least is not None else f"{self.at_most:g}"
        else:
            limit = _number(self.at_least if self.at_least is not None else self.at_most, unit)
        bound = ">=" if self.at_least is not None else "<="
        return f"ratio {bound} {limit}" if self.on == "ratio" else f"{bound} {limit}"


@dataclasses.dataclass
class Figure:
    """One line of the table: a measured value, perhaps a reference and a goal."""

    key: str
    label: str
    unit: str
    value: float | None = None
    reference: float | None = None
    reference_label: str = ""
    goal: Goal | None = None
    samples: list[float] = dataclasses.field(default_factory=list)
    reference_samples: list[float] = dataclasses.field(default_factory=list)
    unavailable: str = ""  # why the figure is n/a
    note: str = ""  # what the figure includes, shown under the table

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def spread(self) -> str:
        """The noise: (max - min) / 2 / median of the samples, and of the reference's."""
        return " / ".join(
            f"±{(max(samples) - min(samples)) / 2 / abs(median(samples)) * 100:.0f}%"
            for samples in (self.samples, self.reference_samples)
            if len(samples) > 1 and median(samples)
        )

    @property
    def status(self) -> str:
        if self.value is None:
            return "n/a"
        if self.goal is None:
            return "-"
        return "met" if self.goal.met(self) else "missed"


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest sample at or above that fraction of them."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    magnitude = abs(value)
    if magnitude >= 1e9:
        text = f"{value / 1e9:.3g} G"
    elif magnitude >= 1e6:
        text = f"{value / 1e6:.3g} M"
    elif magnitude >= 1e4:
        text = f"{value / 1e3:.3g} k"
    elif magnitude >= 100:
        text = f"{value:.0f} "
    else:
        text = f"{value:.3g} "
    return (text + unit).strip()


def environment() -> dict[str, Any]:
    """The machine and the versions the figures depend on."""

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "unicorn": version("unicorn"),
        "pyfuse3": version("pyfuse3"),
        "trio": version("trio"),
        "machine": platform.machine(),
        "load_average": round(os.getloadavg()[0], 2),
    }


def table(figures: Sequence[Figure], env: dict[str, Any], mode: str) -> str:
    header = ("figure", "value", "reference", "ratio", "spread", "goal", "status")
    rows: list[tuple[str, ...]] = []
    for fig in figures:
        if fig.value is None:
            rows.append((fig.label, f"n/a ({fig.unavailable})", "", "", "", _goal(fig), "n/a"))
            continue
        reference = _number(fig.reference, fig.unit)
        if reference and fig.reference_label:
            reference += f" ({fig.reference_label})"
        ratio = f"{fig.ratio:.3f}" if fig.ratio is not None else ""
        value = _number(fig.value, fig.unit)
        rows.append((fig.label, value, reference, ratio, fig.spread, _goal(fig), fig.status))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        f"lguestfs bench ({mode}): {env['cores']} cores, kernel {env['kernel']}, "
        f"Python {env['python']}, unicorn {env['unicorn']}, pyfuse3 {env['pyfuse3']}, "
        f"trio {env['trio']}; load average {env['load_average']} at the start",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    notes = [f"  {fig.label}: {fig.note}" for fig in figures if fig.note]
    if notes:
        lines += ["", "notes (each value is the median of its repetitions):", *notes]
    return "\n".join(line.rstrip() for line in lines)


def _goal(fig: Figure) -> str:
    return fig.goal.text(fig.unit) if fig.goal else ""


def write_json(path: Path, figures: Sequence[Figure], env: dict[str, Any], mode: str) -> None:
    document = {
        "mode": mode,
        "environment": env,
        "figures": [
            {
                "key": fig.key,
                "label": fig.label,
                "unit": fig.unit,
                "value": fig.value,
                "reference": fig.reference,
                "reference_label": fig.reference_label or None,
                "ratio": fig.ratio,
                "goal": fig.goal.text(fig.unit) if fig.goal else None,
                "status": fig.status,
                "unavailable": fig.unavailable or None,
                "note": fig.note or None,
                "samples": fig.samples,
                "reference_samples": fig.reference_samples,
            }
            for fig in figures
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def progress(text: str) -> None:
    """One line on stderr while the bench runs, so a long run shows where it is."""
    print(f"bench: {text}", file=sys.stderr, flush=True)
