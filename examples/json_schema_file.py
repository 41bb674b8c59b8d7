"""A JSON Schema file as the schema: the value is plain JSON data (a dict)."""

import json
import os
from pathlib import Path

from extract import Extractor

SCHEMA = Path(__file__).with_name("person.schema.json")

with Extractor(os.environ.get("EXTRACT_MODEL", "llama3.2"), options={"temperature": 0}) as ex:
    result = ex.extract("Maria Lopez, 42, moved to Madrid last spring.", schema=SCHEMA)
    print(json.dumps(result.value))
    print(f"{result.usage.tokens_per_second or 0:.0f} tokens/s")
