#!/usr/bin/env python3
"""The import graph of the deepspeech2 package, and its circles.

Walks src/deepspeech2 with ``ast`` (no module is imported), collects every import of
another deepspeech2 module, at module level and inside functions (a deferred import is
still a dependency), resolves relative imports, and prints one line per module with the
modules it imports. Then prints each circle (a strongly connected component of more than
one module, or a module importing itself) and exits 1 if there is one.

    python scripts/import_graph.py [--root src] [--quiet]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "deepspeech2"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name ``from <node.module> import …`` refers to, inside ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def known(name: str, modules: set[str]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def build_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(module, is_package, node)
                # ``from .pkg import name``: name is a submodule of pkg, or something defined in pkg.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                found = known(target, modules) if target.split(".")[0] == PACKAGE else None
                if found and found != module:
                    graph[module].add(found)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with a cycle only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    out.append(sorted(component))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent / "src"),
                        help="folder holding the deepspeech2 package (default: src)")
    parser.add_argument("--quiet", action="store_true", help="print only the circles")
    args = parser.parse_args(argv)
    graph = build_graph(Path(args.root))
    strip = len(PACKAGE) + 1
    if not args.quiet:
        for module in sorted(graph):
            deps = ", ".join(sorted(d[strip:] for d in graph[module]))
            print(f"{module[strip:] or PACKAGE} -> {deps or '-'}")
    cycles = strongly_connected(graph)
    if not cycles:
        print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports, no circle")
        return 0
    for component in cycles:
        members = set(component)
        print(f"CIRCLE ({len(component)} modules): {', '.join(m[strip:] for m in component)}")
        for module in component:
            inside = sorted(d[strip:] for d in graph[module] if d in members)
            print(f"    {module[strip:]} -> {', '.join(inside)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
