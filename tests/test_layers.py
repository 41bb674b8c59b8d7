"""The package's imports go one way: no module imports one that imports it back."""

from __future__ import annotations

import grimp


def test_the_package_has_no_import_cycles() -> None:
    graph = grimp.build_graph("extract", exclude_type_checking_imports=True)
    cycles = {
        tuple(sorted((module, imported)))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    }
    assert cycles == set()


def test_the_core_does_no_io() -> None:
    graph = grimp.build_graph("extract", "httpx", "sqlite3", "socket", "asyncio")
    core = {m for m in graph.modules if m.startswith("extract.core")}
    io = [
        (module, imported)
        for module in sorted(core)
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.split(".")[0] in ("sqlite3", "socket", "asyncio")
    ]
    assert io == []
