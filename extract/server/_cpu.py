"""What the llama.cpp engine may assume about the CPU it runs on.

llama-cpp-python builds llama.cpp from source for the machine that installs it
(``-march=native``), so on an Intel CPU with AMX (Sapphire Rapids and later, common in clouds)
the build holds llama.cpp's AMX matrix kernels. Loading a model with llama.cpp's "extra buffer
types" on repacks its weights into the AMX buffer, and the first matrix product then crashes the
process in ``ggml_backend_amx_mul_mat`` (llama.cpp issue 20824; Ollama issue 17205 reports it on
AWS m7i machines). With extra buffer types off the weights stay in plain CPU buffers and the
ordinary AVX-512 kernels run, which work.

Elsewhere the extra buffer types stay on: on CPUs without AMX they hold the repacked layouts
(``CPU_REPACK``) that make some quantisations faster. The choice resolves argument → environment
(:data:`EXTRA_BUFFERS_ENV`) → this CPU's flags, so either way can be forced.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError

EXTRA_BUFFERS_ENV = "EXTRACT_LLAMA_EXTRA_BUFFERS"
AMX_FLAG = "amx_tile"
_CPUINFO = Path("/proc/cpuinfo")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of a ``/proc/cpuinfo`` text (x86 ``flags``, Arm ``Features``).

    >>> sorted(cpu_flags("processor : 0\\nflags : fpu avx2 amx_tile\\n"))
    ['amx_tile', 'avx2', 'fpu']
    """
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def host_cpu_flags() -> frozenset[str]:
    """This machine's CPU flags; empty where ``/proc/cpuinfo`` does not exist (macOS, Windows)."""
    try:
        return cpu_flags(_CPUINFO.read_text(errors="replace"))
    except OSError:
        return frozenset()


def use_extra_buffers(requested: bool | None, env_value: str | None, flags: Iterable[str]) -> bool:
    """Whether llama.cpp should load models with its extra buffer types (weight repacking).

    ``requested`` (the engine's argument) wins, then ``env_value`` (the environment variable);
    otherwise they are on unless the CPU has AMX.

    >>> use_extra_buffers(None, None, {"avx2"}), use_extra_buffers(None, None, {"amx_tile"})
    (True, False)
    >>> use_extra_buffers(None, "on", {"amx_tile"}), use_extra_buffers(False, "1", {"avx2"})
    (True, False)

    Raises:
        ConfigError: ``env_value`` is not a yes/no word.
    """
    if requested is not None:
        return requested
    if env_value is not None and env_value.strip():
        word = env_value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ConfigError(
            f"{EXTRA_BUFFERS_ENV}={env_value!r} is not understood: use 1 or 0 (true/false)"
        )
    return AMX_FLAG not in set(flags)
