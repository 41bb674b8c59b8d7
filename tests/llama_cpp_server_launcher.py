"""Run llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) with
llama.cpp's extra buffer types set as extract's own engine sets them: off on a CPU with AMX,
where they crash the first matrix product (``extract.server._cpu``).

``llama_cpp.server`` has no flag for ``use_extra_bufts``. Its ``Llama(...)`` starts from
``llama_cpp.llama_cpp.llama_model_default_params()``, looked up at each load, so this module
replaces that function with one that sets the field, then runs the server's ``__main__`` with
the same arguments: ``python tests/llama_cpp_server_launcher.py --model PATH --port N ...``.
"""

from __future__ import annotations

import os
import runpy
from typing import Any

import llama_cpp.llama_cpp as low

from extract.server._cpu import EXTRA_BUFFERS_ENV, host_cpu_flags, use_extra_buffers


def main() -> None:
    extra = use_extra_buffers(None, os.environ.get(EXTRA_BUFFERS_ENV), host_cpu_flags())
    default = low.llama_model_default_params

    def params() -> Any:
        value = default()
        value.use_extra_bufts = extra
        return value

    low.llama_model_default_params = params
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
