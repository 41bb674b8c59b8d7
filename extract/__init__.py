"""extract: documents in, validated typed JSON out, with a local Ollama model.

    from extract import Extractor
    with Extractor(model="llama3.2") as ex:
        ex.extract("Ann, 34, from Oslo", schema=Person).value   # Person(name='Ann', ...)

See ``extract.errors`` for the error tree and ``extract.batch`` for labeling many documents.
"""

__version__ = "0.1.0"

from ._eval_report import EvalReport
from ._evaluate import evaluate
from ._extractor import AsyncExtractor, CallOptions, Extractor
from ._result import Attempt, AttemptFailed, Extraction, Partial
from ._wire import Metrics
from .batch import Record
from .dataframe import label_dataframe
from .errors import (
    BadRequest,
    ConfigError,
    ConnectError,
    EmptyOutput,
    ExtractError,
    ExtractionFailed,
    InputError,
    InvalidJSON,
    ModelNotFound,
    OutputError,
    RequestRejected,
    RunawayOutput,
    SchemaError,
    SchemaMismatch,
    ServerBusy,
    ServerError,
    StreamError,
    TimeoutError,  # noqa: A004 - extract.TimeoutError, distinct from the builtin
    TransportError,
    TruncatedOutput,
)
from .schema import Schema, bundled_schemas

__all__ = [
    "AsyncExtractor",
    "Attempt",
    "AttemptFailed",
    "BadRequest",
    "CallOptions",
    "ConfigError",
    "ConnectError",
    "EmptyOutput",
    "EvalReport",
    "ExtractError",
    "Extraction",
    "ExtractionFailed",
    "Extractor",
    "InputError",
    "InvalidJSON",
    "Metrics",
    "ModelNotFound",
    "OutputError",
    "Partial",
    "Record",
    "RequestRejected",
    "RunawayOutput",
    "Schema",
    "SchemaError",
    "SchemaMismatch",
    "ServerBusy",
    "ServerError",
    "StreamError",
    "TimeoutError",
    "TransportError",
    "TruncatedOutput",
    "__version__",
    "bundled_schemas",
    "evaluate",
    "label_dataframe",
]
