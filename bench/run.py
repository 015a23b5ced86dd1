"""Run adk-retry's benchmarks; write the page and its plot.

    python bench/run.py                   # full run (~12 min): docs/benchmarks.md, docs/benchmarks.png
    python bench/run.py --smoke           # tiny sizes (~30 s), into a new temporary directory
    python bench/run.py --smoke --out DIR
    python bench/run.py --overload        # only sections 6-9 (~8 min) into a temp dir's overload.md
    python bench/run.py --overload --smoke

Needs only 127.0.0.1: the model server is adk_retry's own fault server.
Optional libraries (the ``bench`` extra: tenacity, stamina, backoff,
matplotlib) only add rows and the plot.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported: no download
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass

from bench.failure_path import FailurePath, measure_failure_path
from bench.overhead import Overhead, measure_overhead
from bench.overload import FULL_OVERLOAD, SMOKE_OVERLOAD, Overload, OverloadSizes, measure_overload
from bench.report import PLOT_NAME, overload_page, page, plot
from bench.stack import Goodput, Outage, measure_goodput, measure_outage
from bench.streaming import Streaming, measure_memory, measure_streaming
from bench.tables import Section

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE_NAME = "benchmarks.md"
OVERLOAD_PAGE_NAME = "overload.md"
QUIET_LOGGERS = ("adk_retry", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "google_adk", "httpx", "openai", "aiohttp")


@dataclass(frozen=True)
class Sizes:
    """How much each section measures."""

    overhead_iterations: int
    overhead_rounds: int
    litellm_calls: int
    stream_chunks: int
    stream_gap: float
    stream_rounds: int
    streams: int
    memory_chunks: int
    memory_rounds: int
    fault_rates: tuple[float, ...]
    goodput_calls: int
    sdk_concurrency: int
    outage_calls: int
    outage_together: bool = False
    overload: OverloadSizes = FULL_OVERLOAD


FULL = Sizes(
    overhead_iterations=10_000,
    overhead_rounds=15,
    litellm_calls=20,
    stream_chunks=20,
    stream_gap=0.05,
    stream_rounds=5,
    streams=4,
    memory_chunks=2_000,
    memory_rounds=3,
    fault_rates=(0.1, 0.3, 0.5),
    goodput_calls=1_000,
    sdk_concurrency=50,
    outage_calls=100,
)
SMOKE = Sizes(
    overhead_iterations=300,
    overhead_rounds=2,
    litellm_calls=3,
    stream_chunks=20,
    stream_gap=0.005,
    stream_rounds=1,
    streams=1,
    memory_chunks=200,
    memory_rounds=1,
    fault_rates=(0.1, 0.5),
    goodput_calls=20,
    sdk_concurrency=20,
    outage_calls=5,
    outage_together=True,
    overload=SMOKE_OVERLOAD,
)


def quiet() -> None:
    """Silence the retry and HTTP layers: thousands of retries would print thousands of lines."""
    import litellm

    litellm.suppress_debug_info = True
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


_last_step: list[float] = []


def _step(name: str) -> float:
    """Announce a section on stderr, with the time the previous one took."""
    now = time.perf_counter()
    took = f" (previous: {now - _last_step[-1]:.1f} s)" if _last_step else ""
    _last_step.append(now)
    print(f"[bench] {name}{took}", file=sys.stderr, flush=True)
    return now


@dataclass(frozen=True)
class Results:
    """Everything measured, ready for the page."""

    overhead: Overhead
    streaming: Streaming
    memory: Section
    outage: Outage
    goodput: Goodput
    overload: Overload
    failure_path: FailurePath
    seconds: float


async def measure(sizes: Sizes, *, seed: int) -> Results:
    """Measure every section, in one event loop."""
    started = _step("1/7 success-path overhead")
    overhead = await measure_overhead(
        iterations=sizes.overhead_iterations, rounds=sizes.overhead_rounds, litellm_calls=sizes.litellm_calls
    )
    _step("2/7 streaming time to first chunk")
    streaming = await measure_streaming(
        chunks=sizes.stream_chunks, gap=sizes.stream_gap, rounds=sizes.stream_rounds, streams=sizes.streams
    )
    _step("3/7 memory per streamed chunk")
    memory = await measure_memory(chunks=sizes.memory_chunks, rounds=sizes.memory_rounds)
    _step("4/7 load in a full outage")
    outage = await measure_outage(calls=sizes.outage_calls, together=sizes.outage_together)
    _step("5/7 goodput under faults")
    goodput = await measure_goodput(
        rates=sizes.fault_rates, calls=sizes.goodput_calls, sdk_concurrency=sizes.sdk_concurrency, seed=seed
    )
    _step("6/7 overload: rate limit, outage and recovery, slow first token, fallback")
    overload = await measure_overload(sizes.overload)
    _step("7/7 the failure path's own cost")
    failure_path = await measure_failure_path(
        iterations=sizes.overhead_iterations // 5, rounds=max(2, sizes.overhead_rounds // 3)
    )
    return Results(overhead, streaming, memory, outage, goodput, overload, failure_path, time.perf_counter() - started)


async def measure_overload_only(sizes: Sizes) -> tuple[Overload, float]:
    """Only sections 6-9 (``--overload``), and how long they took."""
    started = _step("overload: rate limit, outage and recovery, slow first token, fallback")
    overload = await measure_overload(sizes.overload)
    return overload, time.perf_counter() - started


def write(results: Results, out: Path, *, smoke: bool) -> Path:
    """Write the plot (when matplotlib is there) and the page into ``out``; returns the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    plotted = plot(results.goodput, results.outage, out / PLOT_NAME)
    text = page(
        overhead=results.overhead,
        streaming=results.streaming,
        goodput=results.goodput,
        outage=results.outage,
        memory=results.memory,
        overload=results.overload,
        failure_path=results.failure_path.section,
        plotted=plotted,
        seconds=results.seconds,
        smoke=smoke,
    )
    target = out / PAGE_NAME
    target.write_text(text, encoding="utf-8")
    return target


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="Run adk-retry's benchmarks and write docs/benchmarks.md.")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the suite runs (~30 s)")
    parser.add_argument("--out", type=Path, help="output directory (default: docs/; --smoke: a new temp dir)")
    parser.add_argument(
        "--overload",
        action="store_true",
        help=f"only the overload sections, into {OVERLOAD_PAGE_NAME} (default: a new temp dir)",
    )
    parser.add_argument("--seed", type=int, default=20261, help="seed of the fault draws (default: %(default)s)")
    return parser.parse_args(argv)


def output_dir(args: argparse.Namespace) -> Path:
    """Where to write; a smoke run never writes into docs/."""
    if args.out is None:
        return Path(tempfile.mkdtemp(prefix="adk-retry-bench-")) if args.smoke or args.overload else DOCS
    if args.smoke and args.out.resolve() == DOCS.resolve():
        raise SystemExit("--smoke never writes into docs/: its numbers mean nothing")
    return Path(args.out)


def main(argv: list[str] | None = None) -> int:
    """Entry point: measure, write, and print where the page is."""
    args = parse(argv)
    out = output_dir(args)
    quiet()
    sizes = SMOKE if args.smoke else FULL
    if args.overload:
        overload, seconds = asyncio.run(measure_overload_only(sizes))
        out.mkdir(parents=True, exist_ok=True)
        target = out / OVERLOAD_PAGE_NAME
        target.write_text(overload_page(overload, seconds=seconds, smoke=args.smoke), encoding="utf-8")
        print(f"[bench] wrote {target}; measuring took {seconds:.0f} s", file=sys.stderr)
        print(target)
        return 0
    results = asyncio.run(measure(sizes, seed=args.seed))
    target = write(results, out, smoke=args.smoke)
    print(f"[bench] wrote {target}; measuring took {results.seconds:.0f} s", file=sys.stderr)
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
