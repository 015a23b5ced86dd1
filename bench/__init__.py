"""adk-retry's benchmark suite: ``python bench/run.py`` (full) or ``--smoke``.

See ``docs/benchmarks.md`` for the results and ``bench/run.py`` for the entry point.
"""
