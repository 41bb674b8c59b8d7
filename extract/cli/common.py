"""What every subcommand shares: error reporting, the --local server, common options."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from ..client.backends import BACKENDS
from ..errors import ExtractError

F = TypeVar("F", bound=Callable[..., Any])

# A run ended by SIGTERM exits as a shell reports a process that signal ended.
EXIT_TERMINATED = 128 + signal.SIGTERM


class ExtractGroup(click.Group):
    """Prints ExtractError as one line on stderr and exits with the error's code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExtractError as exc:
            click.secho(f"error: {type(exc).__name__}: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program was, as Ctrl-C raises KeyboardInterrupt; being one,
    it runs the same cleanup (asyncio cancels the run's tasks, files are closed)."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (once: a second SIGTERM ends the
    process as it would have). Outside the main thread, where signals cannot be caught,
    nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # None: a handler installed outside Python, which cannot be put back; the default can.
    previous = signal.getsignal(signal.SIGTERM) or signal.SIG_DFL

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, previous)
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def model_options(func: F) -> F:
    """--model, --host, --backend, --local: which model, where it runs and what API it speaks."""
    func = click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        default="ollama",
        show_default=True,
        envvar="EXTRACT_BACKEND",
        help="The server's API: ollama (/api/generate) or openai (/v1/chat/completions: vLLM, "
        "llama.cpp's server, LM Studio; host from $OPENAI_BASE_URL, key from $OPENAI_API_KEY).",
    )(func)
    func = click.option(
        "--local",
        is_flag=True,
        help="Run the embedded llama.cpp server with the bundled small model (no Ollama needed).",
    )(func)
    func = click.option(
        "--host",
        "hosts",
        multiple=True,
        help="Ollama URL (repeat for several hosts). Default: $OLLAMA_HOST or 127.0.0.1:11434.",
    )(func)
    func = click.option(
        "--model", "-m", envvar="EXTRACT_MODEL", help="Model name, e.g. llama3.2 ($EXTRACT_MODEL)."
    )(func)
    return func


@contextlib.contextmanager
def local_server(
    local: bool, hosts: tuple[str, ...], model: str | None
) -> Iterator[tuple[list[str], str | None]]:
    """With --local, start the embedded server and point hosts/model at it."""
    if not local:
        yield list(hosts), model
        return
    from ..server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

    if hosts:
        raise click.UsageError("--local runs its own server; leave out --host")
    click.echo("starting the embedded llama.cpp server (first run loads the model)...", err=True)
    with serve(LlamaEngine()) as srv:
        yield [srv.url], model or DEFAULT_LOCAL_MODEL


def cache_options(func: F) -> F:
    """--no-cache and --cache PATH: whether and where results are kept between runs."""
    func = click.option(
        "--cache",
        "cache_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Cache file. Default: $EXTRACT_CACHE, else ~/.cache/extract/cache.sqlite.",
    )(func)
    func = click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")(func)
    return func


def _option_pair(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it is JSON (numbers, true, lists), else text.

    >>> _option_pair("temperature=0.2"), _option_pair("stop=[\\"\\\\n\\"]"), _option_pair("x=a b")
    (('temperature', 0.2), ('stop', ['\\n']), ('x', 'a b'))
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(
            f"{text!r}: use KEY=VALUE, e.g. temperature=0", param_hint="--option"
        )
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _chunk(text: str | None) -> int | str | None:
    if text is None or text == "auto":
        return text
    if not text.isdigit():
        raise click.BadParameter(
            f"{text!r}: use auto or a number of characters", param_hint="--chunk"
        )
    return int(text)


_CALL_FLAGS = (
    click.option(
        "--format",
        "format_mode",
        type=click.Choice(["auto", "json", "schema", "none"]),
        default="auto",
        show_default=True,
        help="What to send as Ollama's `format`.",
    ),
    click.option("--instructions", help="The task sentence, in place of the generic one."),
    click.option("--system", help="A system prompt, in place of the model's."),
    click.option(
        "--option",
        "option_pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="An Ollama option (repeatable): temperature=0, num_ctx=8192, seed=1, ...",
    ),
    click.option(
        "--max-attempts",
        type=click.IntRange(min=1),
        help="Model calls per document, re-asking with the error. Default: 3.",
    ),
    click.option(
        "--chunk",
        "chunk_text",
        metavar="auto|CHARS",
        help="Read a document too long for the context in pieces, and merge their values.",
    ),
    click.option(
        "--samples",
        type=click.IntRange(min=1),
        help="Ask N times (sampling) and keep each field's majority; its agreement is the "
        "confidence.",
    ),
    click.option(
        "--examples",
        "examples_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help='Worked examples for the prompt: a JSONL file of {"text", "value"} lines.',
    ),
    click.option(
        "--no-calibrate",
        is_flag=True,
        help="Take the model's own choice for enum and boolean fields, uncalibrated.",
    ),
    click.option(
        "--decide-choices/--generate-choices",
        "decide_choices",
        default=None,
        help="Enum and boolean fields: decide each from the model's scores at one token (a "
        "short request per field, where the server continues a begun reply), or generate the "
        "whole reply. Default: decide where the server allows it.",
    ),
    click.option(
        "--confidence-temperature",
        type=click.FloatRange(min=0, min_open=True),
        help="Report each confidence with its log-odds divided by T (`extract eval` fits T on "
        "labeled records; below 1 sharpens confidences that run low).",
    ),
    click.option(
        "--show-prompt",
        is_flag=True,
        help="Print the exact request for the first document, then exit without labeling.",
    ),
)


def read_examples(path: Path) -> list[tuple[str, Any]]:
    """The (text, value) pairs of a JSONL file of ``{"text", "value"}`` lines (what ``extract
    review --to-examples`` writes). Raises click.BadParameter naming the bad line."""
    examples: list[tuple[str, Any]] = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                item = None
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("text"), str)
                or "value" not in item
            ):
                raise click.BadParameter(
                    f'{path} line {number}: expected {{"text": ..., "value": ...}}',
                    param_hint="--examples",
                )
            examples.append((item["text"], item["value"]))
    return examples


def call_options(func: F) -> F:
    """The flags that set the call options, gathered into one ``call`` argument (a dict of
    ``CallOptions``) plus ``show_prompt``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call: dict[str, Any] = {}
        mode = kwargs.pop("format_mode")
        call["format"] = None if mode == "none" else mode
        for name in ("instructions", "system", "max_attempts"):
            if (value := kwargs.pop(name)) is not None:
                call[name] = value
        if pairs := kwargs.pop("option_pairs"):
            call["options"] = dict(_option_pair(p) for p in pairs)
        if (chunk := _chunk(kwargs.pop("chunk_text"))) is not None:
            call["chunk"] = chunk
        if (samples := kwargs.pop("samples")) is not None:
            call["samples"] = samples
        if (examples := kwargs.pop("examples_path")) is not None:
            call["examples"] = read_examples(examples)
        if kwargs.pop("no_calibrate"):
            call["calibrate"] = False
        if (decide_choices := kwargs.pop("decide_choices")) is not None:
            call["decide_choices"] = decide_choices
        if (temperature := kwargs.pop("confidence_temperature")) is not None:
            call["confidence_temperature"] = temperature
        return func(*args, call=call, **kwargs)

    for flag in reversed(_CALL_FLAGS):
        wrapper = flag(wrapper)
    return wrapper  # type: ignore[return-value]
