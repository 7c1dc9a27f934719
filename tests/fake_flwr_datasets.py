"""A stand-in for Flower Datasets with its real attribute names, decorated with `track`."""

from __future__ import annotations

from flwr_datasets_telemetry import track


class IidPartitioner:
    def __init__(self, num_partitions: int) -> None:
        self._num_partitions = num_partitions

    @property
    def num_partitions(self) -> int:
        raise AssertionError("telemetry must not run properties of host objects")

    @track("partitioner_load_partition")
    def load_partition(self, partition_id: int) -> list[int]:
        return [partition_id] * 3


class DirichletPartitioner(IidPartitioner):
    pass


class FederatedDataset:
    def __init__(self, *, dataset: str, partitioners: dict[str, int | IidPartitioner]) -> None:
        self._dataset_name = dataset
        self._subset = None
        self._partitioners = {
            split: IidPartitioner(p) if isinstance(p, int) else p
            for split, p in partitioners.items()
        }

    @track("load_partition")
    def load_partition(self, partition_id: int, split: str | None = None) -> list[int]:
        if partition_id < 0:
            raise ValueError(f"secret-message partition {partition_id} at /home/alice/data")
        return [partition_id]

    @track("load_split")
    def load_split(self, split: str) -> str:
        return split
