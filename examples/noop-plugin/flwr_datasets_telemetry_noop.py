"""Installing this distribution turns flwr-datasets-telemetry off, whatever the variables.

For locked-down images: ``pip install flwr-datasets-telemetry-noop`` and nothing is
sent from that environment. ``flwr-datasets-telemetry status`` names this plugin as
the reason.
"""

from flwr_datasets_telemetry import hookimpl


@hookimpl
def telemetry_enabled() -> bool:
    return False
