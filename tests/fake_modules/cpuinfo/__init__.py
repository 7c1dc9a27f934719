"""A stand-in for py-cpuinfo, put first on PYTHONPATH by hardware tests only."""
