"""extract: documents in, validated typed JSON out, with a local Ollama model.

    from extract import Extractor
    with Extractor(model="llama3.2") as ex:
        ex.extract("Ann, 34, from Oslo", schema=Person).value   # Person(name='Ann', ...)

See ``extract.errors`` for the error tree and ``Labeling`` for many documents.
"""

from ._version import __version__
from .batch import Cache, Labeling, Record
from .batch.evaluation import EvalReport, evaluate
from .client.calls import CallOptions
from .client.extractor import AsyncExtractor, Extractor
from .core.grounding import Span, grounded
from .core.result import Attempt, AttemptFailed, Extraction, Partial
from .core.schema import CHECKED_FORMATS, Schema, bundled_schemas
from .core.wire import Metrics
from .errors import (
    BadRequest,
    ConfigError,
    ConnectError,
    DocumentTooLong,
    DuplicateId,
    EmptyOutput,
    ExtractError,
    ExtractionFailed,
    InputError,
    InvalidJSON,
    ModelNotFound,
    OutputError,
    PlaceholderEcho,
    RequestRejected,
    RequestTimeout,
    RunawayOutput,
    SchemaError,
    SchemaMismatch,
    ServerBusy,
    ServerError,
    StreamError,
    TransportError,
    TruncatedOutput,
)
from .integrations.pandas import label_dataframe

__all__ = [
    "CHECKED_FORMATS",
    "AsyncExtractor",
    "Attempt",
    "AttemptFailed",
    "BadRequest",
    "Cache",
    "CallOptions",
    "ConfigError",
    "ConnectError",
    "DocumentTooLong",
    "DuplicateId",
    "EmptyOutput",
    "EvalReport",
    "ExtractError",
    "Extraction",
    "ExtractionFailed",
    "Extractor",
    "InputError",
    "InvalidJSON",
    "Labeling",
    "Metrics",
    "ModelNotFound",
    "OutputError",
    "Partial",
    "PlaceholderEcho",
    "Record",
    "RequestRejected",
    "RequestTimeout",
    "RunawayOutput",
    "Schema",
    "SchemaError",
    "SchemaMismatch",
    "ServerBusy",
    "ServerError",
    "Span",
    "StreamError",
    "TransportError",
    "TruncatedOutput",
    "__version__",
    "bundled_schemas",
    "evaluate",
    "grounded",
    "label_dataframe",
]
