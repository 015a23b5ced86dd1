"""The page: machine facts, headlines, the sections' tables, and the plot."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.overhead import Overhead
from bench.overload import Overload
from bench.stack import Goodput, Outage
from bench.streaming import Streaming
from bench.tables import Section, fmt, verdict
from bench.verdicts import with_verdicts

__all__ = ["machine", "overload_page", "page", "plot"]

PLOT_NAME = "benchmarks.png"
SHORT = {
    "none": "no retry layer",
    "sdk": "litellm defaults (SDK retries)",
    "num_retries": "litellm num_retries=3",
    "adk_default": "adk_retry default",
    "adk_transient": "adk_retry transient",
    "adk_budget": "adk_retry transient + budget",
    "adk_default_sdk": "adk_retry default + SDK retries",
    "adk_owner": "adk_retry transient, one owner",
    "stacked": "naive stacking",
    "adk_breaker": "adk_retry transient + breaker",
}
"""Short names of the configurations, for the plot."""
MARKERS = "osD^vx*P"
PACKAGES = ("google-adk", "litellm", "openai", "tenacity", "stamina", "backoff", "matplotlib")


def _first_line(path: str, prefix: str) -> str | None:
    """The value of the first ``prefix: value`` line of ``path``, if any."""
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    """The checkout's commit, and whether it had uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "adk_retry"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} (with uncommitted changes to adk_retry/)" if dirty else head


def machine() -> list[tuple[str, str]]:
    """What the numbers were measured on."""
    memory = _first_line("/proc/meminfo", "MemTotal")
    gib = f"{int(memory.split()[0]) / 1024**2:.1f} GiB" if memory else "unknown"
    rows = [
        ("CPU", _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown"),
        ("cores", str(os.cpu_count())),
        ("memory", gib),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
    ]
    rows += [(package, _version(package)) for package in PACKAGES]
    rows.append(("adk-retry commit", _commit()))
    return rows


def plot(goodput: Goodput, outage: Outage, path: Path) -> bool:
    """Success rate against fault rate, and requests per call in an outage; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1.1, 1]})
    rates = sorted(goodput.jobs)
    series: dict[str, list[tuple[float, float]]] = {}
    attempts: set[int] = set()
    for rate in rates:
        for job in goodput.jobs[rate]:
            series.setdefault(job.layer.key, []).append((rate, job.success))
            attempts.add(job.layer.attempts)
    for index, (key, points) in enumerate(series.items()):
        left.plot(
            [100 * r for r, _ in points],
            [100 * s for _, s in points],
            marker=MARKERS[index % len(MARKERS)],
            linestyle="--" if index % 2 else "-",
            label=SHORT.get(key, key),
        )
    top = max(rates, default=0.5) + 0.05
    fine = [top * index / 60 for index in range(61)]
    for count in sorted(attempts):
        left.plot(
            [100 * r for r in fine], [100 * (1 - r**count) for r in fine], linestyle=":", color="grey", linewidth=1
        )
        left.annotate(f"1-p^{count}", (100 * top, 100 * (1 - top**count)), fontsize=8, color="grey")
    left.set(
        xlabel="fault rate p (% of requests answered 503)",
        ylabel="calls that succeeded (%)",
        title="Goodput under faults (dotted: theory 1 - p^attempts)",
    )
    left.legend(fontsize=7, loc="lower left")
    left.grid(alpha=0.3)
    labels = [SHORT.get(job.layer.key, job.layer.key) for job in outage.jobs]
    values = [job.requests_per_call for job in outage.jobs]
    bars = right.barh(range(len(values)), values, color=[_colour(job.layer.key) for job in outage.jobs])
    right.bar_label(bars, labels=[f"{value:.2f}" for value in values], fontsize=8, padding=2)
    right.set_yticks(range(len(labels)), labels, fontsize=7)
    right.invert_yaxis()
    right.set(xlabel="upstream requests per model call", title="Full outage (every request 503)")
    right.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _colour(key: str) -> str:
    """Blue for adk_retry alone, red for stacked layers, grey for the others."""
    if key == "stacked":
        return "tab:red"
    return "tab:blue" if key.startswith("adk") else "tab:gray"


def _headlines(overhead: Overhead, streaming: Streaming, outage: Outage) -> list[str]:
    lines = [
        f"**Overhead:** adk_retry adds **{fmt(overhead.adk_added_us)} µs** to a successful model call, "
        f"**{fmt(overhead.adk_vs_hand)}x** the time a minimal hand-written retry loop adds (targets: <= 2 µs "
        f"{verdict(overhead.adk_added_us, 2.0)}, <= 1.5x {verdict(overhead.adk_vs_hand, 1.5)}); that is "
        f"{fmt(100 * overhead.adk_added_us / 1000 / overhead.litellm_call_ms, 3)} % of one loopback `LiteLlm` "
        f"call ({fmt(overhead.litellm_call_ms)} ms).",
        f"**Streaming:** time to first chunk with adk_retry in pass-through mode is "
        f"**{fmt(streaming.pass_through_ratio, 3)}x** the bare stream's (target <= 1.05 "
        f"{verdict(streaming.pass_through_ratio, 1.05)}); buffer mode: {fmt(streaming.buffer_ratio, 1)}x.",
    ]
    if outage.best is not None:
        others = {job.layer.key: job for job in outage.jobs}
        context = ", ".join(
            f"{name}: {fmt(others[key].requests_per_call)}"
            for key, name in (
                ("adk_budget", "with a retry budget"),
                ("adk_transient", "adk_retry `transient`"),
                ("sdk", "litellm defaults"),
                ("num_retries", "litellm `num_retries=3`"),
                ("stacked", "naive stacking"),
            )
            if key != outage.best.layer.key
            if key in others
        )
        lines.append(
            f"**Outage:** the best configuration, {outage.best.layer.label}, sends "
            f"**{fmt(outage.best.requests_per_call)}** upstream requests per model call (others: {context})."
        )
    return lines


def page(
    *,
    overhead: Overhead,
    streaming: Streaming,
    goodput: Goodput,
    outage: Outage,
    memory: Section,
    overload: Overload | None = None,
    failure_path: Section | None = None,
    plotted: bool,
    seconds: float,
    smoke: bool,
) -> str:
    """The whole markdown page."""
    sections: Sequence[Section] = (
        overhead.section,
        streaming.section,
        goodput.section,
        outage.section,
        memory,
        *(with_verdicts(overload.sections, overload) if overload is not None else ()),
        *((failure_path,) if failure_path is not None else ()),
    )
    wins = [win for section in sections for win in section.wins]
    figure = (
        f"![Success rate against fault rate, and requests per call in an outage]({PLOT_NAME})"
        if plotted
        else "_No plot: matplotlib is not installed (`pip install -e '.[bench]'`)._"
    )
    mode = _mode(smoke)
    machine_rows = "\n".join(f"| {name} | {value} |" for name, value in machine())
    parts = [
        "# Benchmarks",
        f"{mode}Generated by `bench/run.py` on {datetime.date.today().isoformat()} in "
        f"{seconds / 60:.1f} min; do not edit by hand. Every figure is a ratio, a difference or a count "
        "measured side by side in one run (the machine is shared: absolute times drift).",
        "\n".join(f"- {line}" for line in _headlines(overhead, streaming, outage)),
        figure,
        '## Reproduce\n\n```bash\npip install -e ".[bench]"   # tenacity, stamina, backoff, matplotlib\n'
        "python bench/run.py                # full run: writes docs/benchmarks.md and docs/benchmarks.png\n"
        "python bench/run.py --smoke --out /tmp/bench   # tiny sizes, ~30 s, never writes docs/\n```\n\n"
        'A missing optional library turns its row into "not installed"; without matplotlib there is no plot.',
        "## Machine\n\n| | |\n|---|---|\n" + machine_rows,
        *(section.markdown() for section in sections),
        "## Where an alternative wins\n\n"
        + ("\n".join(f"- {win}" for win in wins) if wins else "- Nowhere, in this run."),
    ]
    return "\n\n".join(parts) + "\n"


def _mode(smoke: bool) -> str:
    return "**smoke run: tiny sizes, the numbers mean nothing**\n\n" if smoke else ""


def overload_page(overload: Overload, *, seconds: float, smoke: bool) -> str:
    """A page with only the overload sections (``bench/run.py --overload``)."""
    machine_rows = "\n".join(f"| {name} | {value} |" for name, value in machine())
    parts = [
        "# Benchmarks: overload",
        f"{_mode(smoke)}Generated by `bench/run.py --overload` on {datetime.date.today().isoformat()} in "
        f"{seconds / 60:.1f} min. The machine is shared: absolute times drift, and rows ran one after the other.",
        "## Machine\n\n| | |\n|---|---|\n" + machine_rows,
        *(section.markdown() for section in with_verdicts(overload.sections, overload)),
    ]
    return "\n\n".join(parts) + "\n"
