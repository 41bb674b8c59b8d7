"""One document at a time: the Ollama transport and the extractors that drive the attempt flow."""
