"""The programs the benchmarks time, one file each: run, never imported.

Each is an ordinary script that takes its parameters from ``sys.argv``. `benchmarks.run`
passes its source to a fresh ``python -c``, as it starts the bare-start baseline
(``python -c pass``), so this folder is never on a child's path. The programs import
only the standard library, `flwr_datasets_telemetry` and, for the side-by-side rows,
`flwr_datasets`: anything else would become part of what they measure. They read their
arguments by hand for the same reason (`argparse` takes milliseconds to import).

A package only so that ruff and mypy give each file a unique module name.
"""
