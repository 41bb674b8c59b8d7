"""Many documents: one labeling session over a pool of hosts, records in and out, a cache."""

from .cache import Cache
from .records import Record
from .session import Labeling

__all__ = ["Cache", "Labeling", "Record"]
