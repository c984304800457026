"""No import cycles in gailkit, not even through imports inside function bodies; envs stay below.

Reads the source with :mod:`ast` and imports nothing, so a cycle that Python happens to survive
(a deferred import inside a function) still fails here. If two modules need each other, a third
module is missing: split the shared piece out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gailkit"


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package ``root``."""
    mods = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def import_edges(root: Path) -> dict[str, dict[str, int]]:
    """``module -> {imported module of the package: line}``, imports at any depth of the code.

    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module, else ``a.b``.
    An import of one's own enclosing package is not counted: Python initialises parents before
    children, and a package's ``__init__`` importing its children is its job.
    """
    mods = module_files(root)
    pkg = root.name

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: anchor at the module's package, one level up per extra dot
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for target in targets:
                if target.split(".")[0] != pkg:
                    continue
                r = resolve(target)
                if r and r != mod and r != pkg and not mod.startswith(r + "."):
                    edges[mod].setdefault(r, node.lineno)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start, targets in edges.items():
        if start in index:
            continue
        work = [(start, iter(targets))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges[w])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    group = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.append(w)
                        if w == v:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return found


def describe(group: list[str], edges: dict[str, dict[str, int]], mods: dict[str, Path]) -> str:
    lines = [f"cycle: {' <-> '.join(group)}"]
    for a in group:
        lines += [f"  {mods[a].relative_to(PACKAGE.parent)}:{line} imports {b}"
                  for b, line in edges[a].items() if b in group]
    return "\n".join(lines)


def test_the_checker_sees_a_cycle_through_a_function_body(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from toy.sub import a  # a package importing its child: fine\n")
    (pkg / "sub" / "a.py").write_text("from toy import b\nfrom toy.sub import a as _self\n")
    (pkg / "b.py").write_text("def f():\n    from .sub.a import x\n    return x\n")
    (pkg / "c.py").write_text("import toy.b\n")
    edges = import_edges(pkg)
    assert edges["toy.b"] == {"toy.sub.a": 2} and edges["toy.c"] == {"toy.b": 1}
    assert cycles(edges) == [["toy.b", "toy.sub.a"]], cycles(edges)


def test_no_import_cycles_in_gailkit():
    edges = import_edges(PACKAGE)
    assert len(edges) > 50, f"only {len(edges)} modules found under {PACKAGE}"
    found = cycles(edges)
    mods = module_files(PACKAGE)
    assert not found, "import cycles (split the shared piece into a third module):\n" + "\n".join(
        describe(group, edges, mods) for group in found)


def test_envs_import_nothing_from_generators_or_agents():
    edges = import_edges(PACKAGE)
    mods = module_files(PACKAGE)
    wrong = [f"{mods[m].relative_to(PACKAGE.parent)}:{line} imports {target}"
             for m in edges if m == "gailkit.envs" or m.startswith("gailkit.envs.")
             for target, line in edges[m].items()
             if target.startswith(("gailkit.generators", "gailkit.agents"))]
    assert any(m.startswith("gailkit.envs.") for m in edges)
    assert not wrong, "envs must take generator / agent parts as objects:\n" + "\n".join(wrong)
