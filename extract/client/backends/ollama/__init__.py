"""The Ollama backend: /api/generate over NDJSON, with /api/version and /api/show for facts."""
