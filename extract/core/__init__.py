"""The pure core: wire shapes, schemas, prompts, decoding, guards and the attempt flow.

Nothing here does I/O; the client layer drives it over HTTP, the server reuses its wire shapes.
"""
