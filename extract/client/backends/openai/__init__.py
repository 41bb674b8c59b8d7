"""The OpenAI-compatible backend: /v1/chat/completions over server-sent events, /v1/models for
facts (vLLM, SGLang, llama.cpp's llama-server, llama-cpp-python's server, LM Studio)."""
