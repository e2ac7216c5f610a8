"""shardfeed: a small Python client for the shardfeed batch server.

``Client`` and ``ShardfeedError`` need only the standard library. The PyTorch
``ShardfeedIterableDataset`` lives in ``shardfeed.torch_dataset`` and is imported from there, so
``import shardfeed`` never imports torch (which takes seconds and may not be installed).
"""
from .client import FORMATS, Client, ShardfeedError, records_of

__all__ = ["Client", "ShardfeedError", "FORMATS", "records_of"]
__version__ = "0.1.0"
