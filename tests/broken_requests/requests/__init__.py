"""A broken requests, put first on PYTHONPATH by one test: importing it fails."""

raise ImportError("this environment's requests is broken")
