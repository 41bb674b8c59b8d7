"""Benchmarks: extract side by side with its peers, all against the project's own server.

Run ``python -m bench`` (or ``--quick``); it prints a table and writes ``bench/RESULTS.md``.
Each benchmark module has a ``run(scale) -> list[Outcome]``; see README.md beside this file.
"""
