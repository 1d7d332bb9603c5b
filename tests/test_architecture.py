"""The import lines docs/architecture.md draws, checked on the source (ast: nothing is imported or run)."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "architecture.md"
PACKAGES = sorted(p.parent.name for p in REPO.glob("*/__init__.py"))
#: What ``sortline`` may need at import time (docs/architecture.md, the sortline section).
CONTRACT_THIRD_PARTY = {"pydantic", "pydantic_settings"}


@dataclass(frozen=True)
class Rule:
    may: frozenset[str]  # repository packages or subpackages; "*" for any
    never: frozenset[str]


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int
    lazy: bool  # inside a function or under ``if TYPE_CHECKING``


def parse_rules(text: str) -> dict[str, Rule]:
    """The rows of the table under '## Import rules'."""
    section = text.split("## Import rules", 1)[1]
    rules = {}
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = [re.findall(r"`([^`]+)`", cell) for cell in cells]
        rules[names[0][0]] = Rule(frozenset(names[1]), frozenset(names[2]))
    return rules


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _ImportVisitor(ast.NodeVisitor):
    def __init__(self, source: str, is_package: bool) -> None:
        self.source, self.is_package = source, is_package
        self.depth = 0
        self.found: list[Import] = []

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _nested  # noqa: N815

    def visit_If(self, node: ast.If) -> None:
        type_checking = "TYPE_CHECKING" in ast.unparse(node.test)
        self.depth += type_checking
        for child in node.body:
            self.visit(child)
        self.depth -= type_checking
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append(Import(self.source, alias.name, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: from the importing module's package
            package = self.source.split(".")
            package = package if self.is_package else package[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        for alias in node.names:
            target = f"{base}.{alias.name}"
            # ``from pkg import submodule`` imports the submodule; ``from mod import name`` the module.
            if not _is_repo_module(target):
                target = base
            self.found.append(Import(self.source, target, node.lineno, self.depth > 0))


def _is_repo_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_in(path: Path, text: str | None = None) -> list[Import]:
    """Every import statement in one file, resolved to the module it loads."""
    visitor = _ImportVisitor(module_name(path), path.name == "__init__.py")
    visitor.visit(ast.parse(text if text is not None else path.read_text(), filename=str(path)))
    return visitor.found


def package_files(package: str) -> Iterator[Path]:
    yield from sorted((REPO / package).rglob("*.py"))


def violations(package: str, rule: Rule, found: list[Import]) -> list[str]:
    """Imports that cross a line of ``rule``: a repository package it may not use, or a banned module."""
    problems = []
    for imp in found:
        top = imp.target.split(".")[0]
        allowed = "*" in rule.may or any(imp.target == m or imp.target.startswith(m + ".") for m in rule.may)
        if top in PACKAGES and top != package and not allowed:
            problems.append(f"{imp.source}:{imp.line} imports {imp.target}")
        if any(imp.target == n or imp.target.startswith(n + ".") for n in rule.never):
            problems.append(f"{imp.source}:{imp.line} imports {imp.target}, which {package} never imports")
    return problems


RULES = parse_rules(DOC.read_text())


def test_the_table_has_a_row_for_every_package() -> None:
    assert set(RULES) == set(PACKAGES)
    for package, rule in RULES.items():
        unknown = {m for m in rule.may if m != "*" and not _is_repo_module(m)}
        assert not unknown, f"{package} may import {unknown}, which are not in the repository"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_crosses_the_lines(package: str) -> None:
    found = [imp for path in package_files(package) for imp in imports_in(path)]
    assert found, f"no imports found in {package}: the walk is broken"
    assert violations(package, RULES[package], found) == []


def test_the_contract_needs_only_pydantic_at_import_time() -> None:
    eager = [imp for path in package_files("sortline") for imp in imports_in(path) if not imp.lazy]
    third_party = {
        imp.target.split(".")[0]
        for imp in eager
        if imp.target.split(".")[0] not in sys.stdlib_module_names
        and imp.target.split(".")[0] not in PACKAGES
    }
    assert third_party <= CONTRACT_THIRD_PARTY


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (lazily or not)."""
    graph: dict[str, set[str]] = {}
    for path in package_files(package):
        for imp in imports_in(path):
            if imp.target.split(".")[0] == package and _is_repo_module(imp.target):
                graph.setdefault(imp.source, set()).add(imp.target)
    return graph


def test_trainer_has_no_import_cycles() -> None:
    graph = import_graph("trainer")
    assert len(graph) > 15, "the trainer's import graph is too small: the walk is broken"
    assert strongly_connected(graph) == []


def test_the_checks_catch_what_they_are_for() -> None:
    """A service importing another, a banned module, a lazy import and a cycle are all found."""
    source = "def f():\n    from classifier_worker.processor import BatchProcessor\n    import pika\n"
    found = imports_in(REPO / "sortline_runtime" / "imaging.py", source)
    assert [imp.lazy for imp in found] == [True, True]
    assert len(violations("sortline_runtime", RULES["sortline_runtime"], found)) == 2
    assert violations("trainer", RULES["trainer"], found[:1]) != []
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
