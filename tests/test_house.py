"""The house rules of the source tree, checked on every run: each layer imports only the layers below
it (imports inside functions count), no import cycle, no module loaded by name, packages and modules
of a size a newcomer can take in, no two modules of one name, short functions with short argument
lists, tests that mirror the package, and every citation pointing at a page and heading of docs/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "corral"
MAX_FUNCTION_LINES = 60  # docs/design.md#style: a function a reader takes in at one glance
MAX_MODULE_LINES = 450  # docs/design.md#style: a module read in one sitting
MAX_PACKAGE_MODULES = 12  # docs/design.md#style: a folder whose modules a newcomer can list
MAX_POSITIONAL = 5  # docs/design.md#style: more arguments are passed by name, or as one dataclass
# What each layer may import of corral (itself included); the commands (cli, demo) may import anything.
ALLOWED = {
    "core": {"core"},
    "engine": {"core", "engine"},
    "dedup": {"core", "dedup"},
    "manifests": {"core", "manifests"},
    "sample": {"core", "sample"},
    "tokenize": {"core", "engine", "manifests", "tokenize"},
    "pipeline": {"core", "engine", "dedup", "manifests", "pipeline"},
    "export": {"core", "engine", "manifests", "export"},
    "report": {"core", "manifests", "report"},
    "train": {"core", "manifests", "tokenize", "train"},
    "launch": {"core", "manifests", "tokenize", "train", "launch"},
}
LOADERS = {"import_module", "__import__", "spec_from_file_location", "module_from_spec", "exec_module"}
CITATION = re.compile(r"docs/([\w/.-]+\.md)(?:#([\w-]+))?")


def _modules(under: str = "corral") -> list[Path]:
    path = ROOT / under
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def _name(path: Path) -> str:
    """A module's dotted name (a package's for its __init__.py)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {_name(p): p for p in _modules()}


def _imports(path: Path) -> set[str]:
    """The corral modules a module imports, anywhere in it (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in NAMES:
                name = name.rpartition(".")[0]
            if name.startswith("corral"):
                found.add(name)
    found.discard(_name(path))
    return found


def _layer(name: str) -> str:
    return name.split(".")[1] if name.count(".") else name


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules()
        if _layer(_name(path)) == layer
        for name in sorted(_imports(path))
        if name != "corral" and _layer(name) not in ALLOWED[layer]
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    graph = {name: _imports(path) for name, path in NAMES.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_no_module_is_loaded_by_name():
    bad = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                fn = node.func
                called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if called in LOADERS:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {called}")
    assert not bad, "\n".join(bad)


def test_packages_and_modules_stay_small():
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    crowded = [
        f"{d.relative_to(ROOT)}: {n} modules"
        for d in [PACKAGE, *sorted(p for p in PACKAGE.rglob("*") if p.is_dir() and (p / "__init__.py").exists())]
        if (n := len([m for m in d.glob("*.py") if m.name != "__init__.py"])) > MAX_PACKAGE_MODULES
    ]
    assert not big and not crowded, "\n".join(big + crowded)


def test_no_two_modules_or_packages_share_a_name():
    seen: dict[str, list[str]] = {}
    for name in NAMES:
        if name != "corral":
            seen.setdefault(name.rpartition(".")[2], []).append(name)
    clashes = [f"{short}: {', '.join(full)}" for short, full in sorted(seen.items()) if len(full) > 1]
    assert not clashes, "\n".join(clashes)


def test_functions_are_short():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "\n".join(long)


def _defined() -> set[str]:
    """The names of every function and class corral defines."""
    return {
        node.name
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }


def test_argument_lists_are_short():
    """No function takes more than five arguments by position, and no call of corral's own passes more."""
    ours, long = _defined(), []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
                if len(args) > MAX_POSITIONAL:
                    long.append(f"{where} def {node.name}: {len(args)} positional parameters")
            elif isinstance(node, ast.Call):
                fn = node.func
                called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                n = len([a for a in node.args if not isinstance(a, ast.Starred)])
                if called in ours and n > MAX_POSITIONAL:
                    long.append(f"{where} {called}(…): {n} positional arguments")
    assert not long, "\n".join(long)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_citations_stay_inside_the_repository():
    outside, broken = [], []
    for path in [*_modules(), ROOT / "README.md", *sorted((ROOT / "manifests").glob("*.yaml"))]:
        text = path.read_text()
        rel = path.relative_to(ROOT)
        for token in re.findall(r"RECIPE\.md|DESIGN\.md|\.\./shared/(?!data)\S*", text):
            outside.append(f"{rel} cites {token}")  # the real samples, ../shared/data, are data, not docs
        for page, anchor in CITATION.findall(text):
            target = ROOT / "docs" / page
            if not target.is_file():
                broken.append(f"{rel}: docs/{page} does not exist")
            elif anchor and anchor not in _anchors(target):
                broken.append(f"{rel}: docs/{page} has no heading #{anchor}")
    assert not outside, "\n".join(outside)
    assert not broken, "\n".join(sorted(set(broken)))


def test_tests_mirror_the_package():
    """Every folder of tests/ is a package folder of corral/, so a module's test sits at its path;
    every module of the engine has its own test file."""
    tests = ROOT / "tests"
    folders = {p.parent.relative_to(tests) for p in tests.rglob("test_*.py")}
    missing = [str(f) for f in sorted(folders) if not (PACKAGE / f).is_dir()]
    assert not missing, f"tests/ folders with no corral/ package: {missing}"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), "two test files share a name (pytest imports them by basename)"
    untested = [
        m.name
        for m in sorted((PACKAGE / "engine").glob("*.py"))
        if m.name != "__init__.py"
        if not (tests / "engine" / f"test_{m.name}").exists()
    ]
    assert not untested, f"engine modules without a test file of their own: {untested}"
