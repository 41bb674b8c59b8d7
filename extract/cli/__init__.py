"""The ``extract`` command: a thin layer over the library.

Exit codes come from the error classes (``ExtractError.exit_code``): 0 success, 1 some
records failed (``label``), 2 usage errors, 3 server unreachable or model missing,
4 extraction failed.
"""

from __future__ import annotations

import click

from .._version import __version__
from .common import ExtractGroup
from .doctor import doctor
from .eval import evaluate_command
from .export import export
from .label import label
from .one import one
from .review import review
from .schemas import schemas
from .serve import serve
from .tune import tune_command


@click.group(cls=ExtractGroup)
@click.version_option(__version__, prog_name="extract")
def main() -> None:
    """Turn documents into validated JSON with a local Ollama model."""


main.add_command(doctor)
main.add_command(evaluate_command)
main.add_command(export)
main.add_command(label)
main.add_command(one)
main.add_command(review)
main.add_command(schemas)
main.add_command(serve)
main.add_command(tune_command)
