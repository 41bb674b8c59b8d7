"""Adapters that run extract inside other data engines.

Each adapter is its own module and imports its engine only when that module is imported, so
``import extract`` (and this package) never pulls in Ray, pandas or pyarrow:

- :mod:`extract.integrations.ray` — a ``Labeler`` for Ray Data's ``Dataset.map_batches``
  (the ``ray`` extra: ``pip install 'extract-llm[ray]'``).
"""
