"""A section of the page: a title, an introduction, one markdown table and notes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Section", "fmt", "verdict"]


@dataclass
class Section:
    """One measured section, rendered as markdown by :meth:`markdown`.

    Rows are added by the sections' code one configuration at a time, so a
    new configuration (a retry budget, one retry owner, ...) is one more row.
    """

    anchor: str
    title: str
    intro: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wins: list[str] = field(default_factory=list)
    """Where an alternative to adk_retry does better: gathered into one section of the page."""

    def add(self, *cells: object) -> None:
        """Append a row; each cell is formatted with ``str``."""
        if len(cells) != len(self.headers):
            raise ValueError(f"{self.anchor}: row has {len(cells)} cells, table has {len(self.headers)} columns")
        self.rows.append([str(cell) for cell in cells])

    def table(self) -> str:
        """The table alone, as GitHub markdown."""
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def markdown(self) -> str:
        """Heading, introduction, table and notes."""
        parts = [f"## {self.title}", self.intro, self.table()]
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        return "\n\n".join(part for part in parts if part)


def fmt(value: float, digits: int = 2, suffix: str = "") -> str:
    """``value`` with ``digits`` decimals and ``suffix``; "n/a" for NaN or infinity."""
    if value is None or math.isnan(value) or math.isinf(value):
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def verdict(value: float, target: float) -> str:
    """ "met" or "**missed**" for ``value <= target`` (n/a when unmeasured)."""
    if math.isnan(value):
        return "n/a"
    return "met" if value <= target else "**missed**"
