"""The benchmark suite cannot rot: run ``bench/run.py --smoke`` once and check what it wrote.

Only what is always there is asserted: the optional libraries of the
``bench`` extra (tenacity, stamina, backoff, matplotlib) may be missing, in
which case their rows say "not installed" and the page says there is no plot.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {
    "## 1. Success-path overhead per model call": "| bare call (no retry layer) |",
    "## 2. Streaming: time to first chunk": "| bare stream (no retry layer) |",
    "## 3. Goodput under faults (real stack)": "| no retry layer (`max_retries=0`: SDK off) |",
    "## 4. Load amplification in a full outage": "| naive stacking: adk_retry `transient` over litellm defaults",
    "## 5. Memory per streamed chunk": '| adk_retry, `stream_mode="buffer"` |',
}
OVERLOAD_SECTIONS = {
    "## 6. Overload: a rate-limited provider": "| client-side pacer at exactly the capacity (the limit), retries off |",
    "## 7. Overload: outage, then recovery": "| adk_retry `RetryPolicy.transient()` |",
    "## 8. Overload: a slow first token (the case for hedging)": "| bare `LiteLlm`, defaults",
    "## 9. Overload: primary outage with a fallback chain": "| litellm `Router`, `num_retries=3`",
}


def test_smoke_run_writes_every_section(tmp_path: Path) -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    page = (tmp_path / "benchmarks.md").read_text(encoding="utf-8")
    for heading, row in {**SECTIONS, **OVERLOAD_SECTIONS}.items():
        assert heading in page
        assert row in page, f"{heading}: no {row!r} row"
    assert "| adk_retry `transient` + retry budget, SDK off |" in page
    for headline in ("**Overhead:**", "**Streaming:**", "**Outage:**"):
        assert headline in page
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
        assert "](benchmarks.png)" in page
    else:
        assert "No plot: matplotlib is not installed" in page


def test_smoke_run_refuses_to_write_into_docs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(ROOT / "docs")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "never writes into docs/" in done.stderr


def test_overload_smoke_run_writes_its_four_tables(tmp_path: Path) -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--overload", "--smoke", "--out", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    page = (tmp_path / "overload.md").read_text(encoding="utf-8")
    assert "smoke run: tiny sizes" in page
    for heading, row in OVERLOAD_SECTIONS.items():
        assert heading in page
        assert row in page, f"{heading}: no {row!r} row"
    # Every measured row has a number in its first figure column, not a "not measured" note.
    rate_table = page.split("## 6.")[1].split("## 7.")[0]
    assert "| adk_retry `transient()` + `RetryBudget()` | " in rate_table
    assert not (tmp_path / "benchmarks.md").exists()
