"""The AMX decision: llama.cpp's extra buffer types are off on CPUs with AMX, on elsewhere."""

from __future__ import annotations

import pytest

from extract import ConfigError
from extract.server._cpu import cpu_flags, use_extra_buffers

# Trimmed /proc/cpuinfo of the two machine kinds seen here.
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8
"""
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16
"""
GRAVITON = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics
"""


@pytest.mark.parametrize(
    ("cpuinfo", "expected"), [(SAPPHIRE_RAPIDS, False), (EPYC, True), (GRAVITON, True), ("", True)]
)
def test_extra_buffers_follow_the_cpu(cpuinfo: str, expected: bool) -> None:
    assert use_extra_buffers(None, None, cpu_flags(cpuinfo)) is expected


@pytest.mark.parametrize("word", ["1", "true", "ON", " yes "])
def test_the_environment_turns_them_on_even_with_amx(word: str) -> None:
    assert use_extra_buffers(None, word, cpu_flags(SAPPHIRE_RAPIDS)) is True


@pytest.mark.parametrize("word", ["0", "false", "Off", "no"])
def test_the_environment_turns_them_off_anywhere(word: str) -> None:
    assert use_extra_buffers(None, word, cpu_flags(EPYC)) is False


def test_the_argument_wins_over_the_environment_and_the_cpu() -> None:
    assert use_extra_buffers(True, "0", cpu_flags(SAPPHIRE_RAPIDS)) is True
    assert use_extra_buffers(False, "1", cpu_flags(EPYC)) is False


def test_an_empty_environment_value_is_unset() -> None:
    assert use_extra_buffers(None, "", cpu_flags(SAPPHIRE_RAPIDS)) is False


def test_a_word_it_does_not_know_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="EXTRACT_LLAMA_EXTRA_BUFFERS='maybe'"):
        use_extra_buffers(None, "maybe", cpu_flags(EPYC))
