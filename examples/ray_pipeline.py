"""Label a dataset on a Ray cluster across several Ollama hosts, resumably.

    python examples/ray_pipeline.py INPUT OUTPUT --schema ticket --model llama3.2 \\
        --host http://gpu1:11434 --host http://gpu2:11434 --parallel 4 --actors 2

INPUT is a JSONL/JSON, CSV or Parquet file or folder; OUTPUT a folder of Parquet files, one per
labeled block. Run the same command again after a crash and only the rows missing from OUTPUT
are labeled (``--retry-failed`` also redoes the rows that failed). ``--address auto`` joins a
running cluster; without it Ray starts locally.

``--parallel`` is what each host runs at once (``OLLAMA_NUM_PARALLEL``). Every actor sends to
every host, ``parallel // actors`` requests at a time, so no host ever sees more than
``--parallel`` requests from the whole cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import ray
import ray.data

from extract.integrations.ray import Labeler, skip_done


def read(path: str) -> Any:
    """The input as a Dataset, by its extension (a folder: by the files in it)."""
    names = [p.name for p in Path(path).iterdir()] if Path(path).is_dir() else [path]
    if all(n.endswith(".parquet") for n in names):
        return ray.data.read_parquet(path)
    if all(n.endswith(".csv") for n in names):
        return ray.data.read_csv(path)
    return ray.data.read_json(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--schema", required=True, help="bundled name or .json file")
    parser.add_argument("--model", default=None, help="default: $EXTRACT_MODEL")
    parser.add_argument("--host", action="append", default=[], help="repeat for each host")
    parser.add_argument("--parallel", type=int, default=1, help="requests each host runs at once")
    parser.add_argument("--actors", type=int, default=1, help="labeling actors (≤ --parallel)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--retry-failed", action="store_true")
    parser.add_argument("--address", default=None, help="'auto' to join a running cluster")
    args = parser.parse_args()
    if not 1 <= args.actors <= args.parallel:
        parser.error("--actors must be between 1 and --parallel: each actor needs ≥ 1 slot")

    ray.init(address=args.address)
    todo = skip_done(read(args.input), args.output, args.id_column, retry_failed=args.retry_failed)
    labeled = todo.map_batches(
        Labeler,
        fn_constructor_kwargs={
            "schema": args.schema,
            "model": args.model,
            "hosts": args.host or None,
            "concurrency_per_host": args.parallel // args.actors,
            "text_column": args.text_column,
        },
        compute=ray.data.ActorPoolStrategy(size=args.actors),
        # An actor mostly waits on the network; leave the CPUs to reading and writing.
        num_cpus=0.25,
        batch_size=args.batch_size,
        batch_format="pyarrow",
    )
    labeled.write_parquet(args.output)

    written = ray.data.read_parquet(args.output).select_columns(["ok"])
    print(f"{args.output}: {written.count()} rows, {written.sum('ok')} ok")


if __name__ == "__main__":
    main()
