"""What telemetry costs: ``python -m benchmarks.run`` from the repository root.

A package so that the runner imports the test suite's helpers (`tests.helpers`,
`tests.servers`) as any module of the repository does, with no path tricks.
"""
