"""1,000 identical calls; the endpoint counts the POSTs they cost. No arguments."""

from __future__ import annotations

import flwr_datasets_telemetry as t


@t.track("same")
def same(split: str) -> str:
    return split


for _ in range(1000):
    same("train")
t.flush(20)  # until the uploader is done: delivery happens outside this process
