"""The one-time notice: printed once per source id, when this machine sends its first
event, so that nobody learns about telemetry only by reading the docs.

Shown by the one process that stores a new source id (two processes starting together
agree on one id, and only the one whose id was stored prints). Never when telemetry is
off or local-only, never in CI (see `_ci.CI_VARIABLES`), and it is the only
thing ever printed without ``FLWR_TELEMETRY_LOGGING=1``.
"""

from __future__ import annotations

import sys
from typing import Final

TEXT: Final = """\
flwr-datasets-telemetry: Flower Datasets sends anonymous usage events (no names, paths or data).
  See exactly what is sent: flwr-datasets-telemetry preview
  Opt out: FLWR_TELEMETRY_ENABLED=0, or for good: flwr-datasets-telemetry disable
  More: https://github.com/adap/flwr-datasets-telemetry#readme (shown once)
"""


def in_ci() -> bool:
    """Whether a CI is detected, by the same table the ``environment`` collector uses."""
    try:
        from ._ci import ci_name

        return ci_name() is not False
    except Exception:
        return True  # unsure: stay quiet


def show(_source: str) -> None:
    """Print the notice to stderr unless in CI; never raises."""
    try:
        if not in_ci():
            sys.stderr.write(TEXT)
            sys.stderr.flush()
    except Exception:
        pass
