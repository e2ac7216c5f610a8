"""PyTorch glue: ``ShardfeedIterableDataset``, one rank's batches as an ``IterableDataset``.

The server already batches (per rank, per epoch, deterministically), so use it with
``DataLoader(ds, batch_size=None)``: the DataLoader must not batch again.

This module imports without torch (the helpers below are plain Python and unit-tested that
way); ``ShardfeedIterableDataset`` exists only when torch imports, and asking for it without
torch raises an ImportError that says so.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .client import Client, records_of

try:  # torch is optional: the HTTP client must work on a bare Python
    import torch  # noqa: F401
    import torch.distributed as _dist
    from torch.utils.data import IterableDataset as _IterableDataset
    from torch.utils.data import get_worker_info as _get_worker_info
    _TORCH_IMPORT_ERROR: Optional[ImportError] = None
except ImportError as _exc:  # pragma: no cover - depends on the environment
    _TORCH_IMPORT_ERROR = _exc

__all__ = ["resolve_rank_world", "check_world", "worker_indices", "ShardfeedIterableDataset"]


def resolve_rank_world(rank: Optional[int] = None, world_size: Optional[int] = None,
                       dist: Any = None) -> Tuple[int, int]:
    """Rank and world size to read with.

    Explicit arguments win (with tensor or pipeline parallelism the *data-parallel* rank is
    not the global rank, so the caller must be able to say which one feeds data); otherwise
    ``torch.distributed`` when it is initialised; otherwise rank 0 of a world of 1.
    """
    if dist is None and _TORCH_IMPORT_ERROR is None:
        dist = _dist
    if (rank is None or world_size is None) and dist is not None \
            and dist.is_available() and dist.is_initialized():
        rank = dist.get_rank() if rank is None else rank
        world_size = dist.get_world_size() if world_size is None else world_size
    return (0 if rank is None else int(rank)), (1 if world_size is None else int(world_size))


def check_world(descriptor: Dict[str, Any], rank: int, world_size: int) -> None:
    """Raises ValueError unless the dataset was registered for this world: every rank
    reads one shard, so a mismatch would silently skip or repeat data."""
    shards = int(descriptor["numShards"])
    if world_size != shards:
        raise ValueError(
            f"dataset {descriptor.get('name')!r} is registered with numShards={shards}, but the "
            f"world size is {world_size}: register it (under another name) with "
            f"numShards={world_size}, or pass rank/world_size for the data-parallel group")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside the world of {world_size}")


def worker_indices(start: int, num_batches: int, worker_id: int, num_workers: int) -> List[int]:
    """Batch indices one DataLoader worker reads: every ``num_workers``-th index counted from
    ``start`` (``(i - start) % K == k``). Counting from ``start`` rather than from 0 keeps the
    DataLoader's round robin over workers yielding ``start, start+1, ...`` after a resume too."""
    return list(range(start + worker_id, num_batches, num_workers))


def __getattr__(name: str) -> Any:
    if name == "ShardfeedIterableDataset" and _TORCH_IMPORT_ERROR is not None:
        raise ImportError("ShardfeedIterableDataset needs PyTorch (pip install torch); "
                          "shardfeed.Client works without it") from _TORCH_IMPORT_ERROR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if _TORCH_IMPORT_ERROR is None:

    class ShardfeedIterableDataset(_IterableDataset):  # type: ignore[misc,valid-type]
        """One rank's batches of one epoch, in batch order.

        Rank and world size: see :func:`resolve_rank_world` (resolved here, in the main
        process, where ``torch.distributed`` is initialised; DataLoader worker processes get
        a copy). The world size must equal the dataset's ``numShards``.

        ``set_epoch(e)`` before each epoch, as with ``DistributedSampler``. With DataLoader
        workers (``num_workers=K``), worker k reads indices ``start+k, start+k+K, ...``; each
        worker's stream is in order and the DataLoader's default in-order round robin gives
        back ``start, start+1, ...``, but with ``in_order=False`` (or when looking inside a
        worker) the order interleaves. With ``persistent_workers=True`` workers keep the
        epoch they started with, so leave it off when calling ``set_epoch``.

        Yields the records list (json), the list of ``record`` values (ndjson), or a
        ``pyarrow.Table`` (arrow), passed through ``transform`` when given (it runs in the
        worker process, so it must be picklable: a module-level function).
        """

        def __init__(self, base_url: str, name: str, epoch: int = 0, format: str = "json",
                     rank: Optional[int] = None, world_size: Optional[int] = None, *,
                     token: Optional[str] = None, start: int = 0, workers: int = 4,
                     prefetch: int = 8, transform: Optional[Callable[[Any], Any]] = None,
                     client_options: Optional[Dict[str, Any]] = None) -> None:
            super().__init__()
            self.base_url = base_url
            self.name = name
            self.epoch = int(epoch)
            self.format = format
            self.token = token
            self.start = int(start)
            self.workers = workers
            self.prefetch = prefetch
            self.transform = transform
            self.client_options = dict(client_options or {})
            self.rank, self.world_size = resolve_rank_world(rank, world_size)
            self._client_obj: Optional[Client] = None
            Client._check_format(format)
            # Fail at construction, on every rank, rather than mid-epoch.
            self.descriptor = self._client().describe(name)
            check_world(self.descriptor, self.rank, self.world_size)

        def _client(self) -> Client:
            if self._client_obj is None:  # one per process: connections do not survive fork
                self._client_obj = Client(self.base_url, token=self.token, **self.client_options)
            return self._client_obj

        def __getstate__(self) -> Dict[str, Any]:
            state = dict(self.__dict__)
            state["_client_obj"] = None  # sockets and locks do not pickle
            return state

        def close(self) -> None:
            """Closes this process's connections (they also close when the dataset is freed)."""
            if self._client_obj is not None:
                self._client_obj.close()

        def set_epoch(self, epoch: int, start: int = 0) -> None:
            """Selects the epoch (and the first batch, to resume mid-epoch) of the next pass."""
            self.epoch = int(epoch)
            self.start = int(start)

        def __len__(self) -> int:
            n = int(self._client().shard(self.name, self.rank)["numBatches"])
            return max(0, n - self.start)

        def __iter__(self) -> Iterator[Any]:
            info = _get_worker_info()
            k, workers = (0, 1) if info is None else (info.id, info.num_workers)
            client = self._client()
            n = int(client.shard(self.name, self.rank)["numBatches"])
            indices = worker_indices(self.start, n, k, workers)
            it = client.iter_indices(self.name, self.rank, indices, epoch=self.epoch,
                                     format=self.format, workers=self.workers,
                                     prefetch=self.prefetch)
            try:
                for _, batch in it:
                    out = records_of(self.format, batch)
                    yield self.transform(out) if self.transform is not None else out
            finally:
                it.close()  # stops the fetch threads when the loop stops early
