"""The package's imports go one way: no module imports one that imports it back."""

from __future__ import annotations

import sys

import grimp


def test_the_package_has_no_import_cycles() -> None:
    graph = grimp.build_graph("extract", exclude_type_checking_imports=True, cache_dir=None)
    cycles = {
        tuple(sorted((module, imported)))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    }
    assert cycles == set()


# What the pure core may use besides the standard library's own pure modules: parsing and
# validation packages, and the string-format checkers (core/formats.py).
CORE_DEPENDENCIES = {
    *("json_repair", "jsonschema", "jsonschema_specifications", "partial_json_parser"),
    *("pydantic", "referencing"),
    *("fqdn", "idna", "rfc3339_validator", "rfc3986_validator", "uri_template"),
}
IO_MODULES = {"asyncio", "http", "httpx", "socket", "sqlite3", "subprocess", "threading", "urllib"}


def test_the_core_does_no_network_or_storage_io() -> None:
    graph = grimp.build_graph(
        "extract",
        include_external_packages=True,
        exclude_type_checking_imports=True,
        cache_dir=None,
    )
    used = {
        imported.split(".")[0]
        for module in graph.modules
        if module.startswith("extract.core")
        for imported in graph.find_modules_directly_imported_by(module)
        if not imported.startswith("extract")
    }
    assert used & IO_MODULES == set()
    assert used - set(sys.stdlib_module_names) <= CORE_DEPENDENCIES
