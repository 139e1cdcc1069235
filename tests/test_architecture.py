"""The house plan, enforced: no import cycles, the shared library imports no subproject, subprojects
do not import each other (except qa_pipeline -> embedding_ft), and bench code is not reached
through ``sys.path`` edits. Imports are read with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from embshared.runtime import repo_root

REPO = repo_root()

#: package name -> the subproject folder that owns it
PACKAGES = {
    "embshared": "shared",
    "embedding_ft": "embeddingFT",
    "embedding_model": "jsonembed",
    "ragcun": "ragcun",
    "gapfill": "gapfill",
    "qa_pipeline": "qa_pipeline",
}
#: the one allowed import between subprojects (qa_pipeline trains through embeddingFT)
ALLOWED_SIBLING_IMPORTS = {("qa_pipeline", "embedding_ft")}


def package_dir(root: Path, package: str, owner: str) -> Path | None:
    for candidate in (root / owner / "src" / package, root / owner / package):
        if candidate.is_dir():
            return candidate
    return None


def module_name(path: Path, package_root: Path, package: str) -> str:
    parts = list(path.relative_to(package_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def imports_of(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def module_graph(root: Path = REPO, packages: dict[str, str] = PACKAGES) -> dict[str, set[str]]:
    """module -> the modules of the known packages it imports (names resolved to existing modules)."""
    files: dict[str, Path] = {}
    for package, owner in packages.items():
        folder = package_dir(root, package, owner)
        if folder is None:
            continue
        for path in folder.rglob("*.py"):
            files[module_name(path, folder, package)] = path
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges = set()
        for name in imports_of(path, module):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a list of modules, first == last), or None. Package __init__ re-exports
    of their own submodules are not cycles (``a/__init__`` importing ``a.b`` while ``a.b`` imports ``a.c``)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if node.startswith(nxt + "."):  # a module importing its own package's __init__
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(module_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_shared_imports_no_subproject_and_subprojects_no_siblings():
    bad = []
    for module, edges in module_graph().items():
        top = module.split(".")[0]
        for target in edges:
            other = target.split(".")[0]
            if other == top or other == "embshared":
                continue
            if top == "embshared" or (top, other) not in ALLOWED_SIBLING_IMPORTS:
                bad.append(f"{module} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_sys_path_edits():
    edits = ("sys.path." + "insert", "sys.path." + "append")  # spelt apart so that this file does not match
    offenders = []
    for path in REPO.rglob("*.py"):
        if ".venv" in path.parts or "site-packages" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(edit in text for edit in edits):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, "sys.path edited in: " + ", ".join(offenders)


def test_a_planted_cycle_is_found(tmp_path):
    pkg = tmp_path / "shared" / "plantedpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from plantedpkg.b import thing\n")
    (pkg / "b.py").write_text("def f():\n    from plantedpkg import a\n")
    (pkg / "c.py").write_text("import plantedpkg.a\n")
    graph = module_graph(tmp_path, {"plantedpkg": "shared"})
    assert graph["plantedpkg.a"] == {"plantedpkg.b"} and graph["plantedpkg.c"] == {"plantedpkg.a"}
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"plantedpkg.a", "plantedpkg.b"}
    (pkg / "b.py").write_text("def f():\n    return 1\n")
    assert find_cycle(module_graph(tmp_path, {"plantedpkg": "shared"})) is None


@pytest.mark.parametrize("relative", [("from . import x", "p.q.x"), ("from .r import y", "p.q.r")])
def test_relative_imports_resolve(tmp_path, relative):
    statement, expected = relative
    path = tmp_path / "m.py"
    path.write_text(statement + "\n")
    assert expected in imports_of(path, "p.q.m")


SUBPROJECTS = [owner for package, owner in PACKAGES.items() if owner != "shared"]


@pytest.mark.parametrize("package", [p for p, owner in PACKAGES.items() if owner != "shared"])
def test_every_subproject_has_the_same_plan(package):
    """<sub>/src/<package>/cli/, pyproject.toml, README.md, bench/results/<variant>/ holding results only."""
    owner = REPO / PACKAGES[package]
    assert (owner / "src" / package / "__init__.py").is_file(), f"{owner.name}: no src/{package}/"
    assert (owner / "src" / package / "cli" / "__init__.py").is_file(), f"{owner.name}: no src/{package}/cli/"
    assert (owner / "pyproject.toml").is_file() and (owner / "README.md").is_file()
    results = owner / "bench" / "results"
    if results.is_dir():
        loose = [p.name for p in results.iterdir() if p.is_file() and p.name != ".gitignore"]
        assert not loose, f"{results}: results belong in <variant>/ folders: {loose}"
        code = [str(p.relative_to(REPO)) for p in results.rglob("*.py")]
        assert not code, f"code inside bench results: {code}"


def _architecture_names() -> list[str]:
    import re

    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"`([^`\n]+)`", text)))


def _exists(name: str) -> bool:
    """A path from the repository root, the shared package or a subproject's package; or a module."""
    import importlib.util

    bases = [REPO, REPO / "shared" / "embshared"]
    bases += [d for p, owner in PACKAGES.items() if (d := package_dir(REPO, p, owner)) is not None]
    bases += [REPO / owner for owner in SUBPROJECTS]  # `configs/`, `bench/` of some subproject
    if "/" in name or name.endswith((".py", ".md", ".yaml", ".mk")):
        if "/" not in name:  # a bare file name: somewhere in a package or at the root
            return any((base / name).exists() for base in bases) or any(any(base.rglob(name)) for base in bases[1:])
        return any((base / name.rstrip("/")).exists() for base in bases)
    return importlib.util.find_spec(name) is not None


def test_architecture_md_names_only_what_exists():
    """Every path, file and module ARCHITECTURE.md names in backticks exists (placeholders with <> skipped)."""
    checked, missing = 0, []
    for name in _architecture_names():
        name = name.split("(")[0].strip()  # `load_encoder(folder, ...)` -> load_encoder
        if not name or any(c in name for c in "<>=*[] ") or name.startswith(("-", "make", "python")):
            continue
        if "/" not in name and "." not in name:
            continue  # plain words (function or class names): the modules named beside them are checked
        if "." in name and "/" not in name and not name.endswith((".py", ".md", ".yaml", ".mk", ".json", ".jsonl")):
            top = name.split(".")[0]
            if top not in PACKAGES:
                continue  # `bench.py`-like text or an attribute path outside our packages
            module = name
            while module and not _exists_module(module):
                module = module.rpartition(".")[0]  # embshared.io.documents.read_documents -> the module
            if module.count(".") < min(1, name.count(".")) or not module:
                missing.append(name)
            checked += 1
            continue
        if name.endswith((".json", ".jsonl", ".npy")) and "/" not in name:
            continue  # output files of a run, not repository files
        checked += 1
        if not _exists(name):
            missing.append(name)
    assert checked > 20
    assert not missing, f"ARCHITECTURE.md names what does not exist: {missing}"


def _exists_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False
