"""The house rules of the source tree, checked on every run: layers import downwards only, functions
stay short, and every citation in the code points at a page and heading that exist in docs/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "corral"
MAX_FUNCTION_LINES = 60  # docs/design.md#style: a function a reader takes in at one glance
# Lower layers and the upper packages they must never import.
COMMANDS = ("corral.cli", "corral.demo")
UPPER = ("corral.pipeline", "corral.train", "corral.export", "corral.report", *COMMANDS)
LAYERS = {
    "corral/dedup": UPPER,
    "corral/tokenize": UPPER,
    "corral/sample.py": UPPER,
    "corral/manifests": UPPER,
    # the four upper packages sit side by side
    **{f"corral/{pkg.split('.')[1]}": tuple(u for u in UPPER if u != pkg) for pkg in UPPER[:4]},
}
CITATION = re.compile(r"docs/([\w/.-]+\.md)(?:#([\w-]+))?")


def _modules(under: str) -> list[Path]:
    path = ROOT / under
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("under", sorted(LAYERS))
def test_lower_layers_import_nothing_above_them(under):
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(under)
        for name in sorted(_imports(path))
        if any(name == up or name.startswith(up + ".") for up in LAYERS[under])
    ]
    assert not bad, "\n".join(bad)


def test_functions_are_short():
    long = []
    for path in _modules("corral"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
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
    for path in [*_modules("corral"), ROOT / "README.md", *sorted((ROOT / "manifests").glob("*.yaml"))]:
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
    """Every folder of tests/ is a package folder of corral/, so a module's test sits at its path."""
    tests = ROOT / "tests"
    folders = {p.parent.relative_to(tests) for p in tests.rglob("test_*.py")}
    missing = [str(f) for f in sorted(folders) if not (PACKAGE / f).is_dir()]
    assert not missing, f"tests/ folders with no corral/ package: {missing}"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), "two test files share a name (pytest imports them by basename)"
