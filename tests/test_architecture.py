"""The package's import graph, read with the standard ``ast`` module: no module imports another
in a circle (imports inside functions count: a lazy import hides a circle, it does not remove
it), and no module reads another numgru module's private names (``from .x import _y``,
``x._y`` where ``x`` is a numgru module)."""

import ast
import pathlib

import numgru

PKG = pathlib.Path(numgru.__file__).parent

# (module, private name of another module) pairs that must stay, each with its reason.
ALLOWED_PRIVATE = {
    # to_onnx recognises a numgru sequence estimator by the estimators' common base class (to
    # check that it is fitted, and to refuse one it cannot export with its own message); the
    # base class is not public API
    ("numgru.onnx", "numgru.estimators._BaseRecurrentEstimator"),
}


def _modules():
    """{dotted name: path} of every module of the package (``numgru._cpu``, ...)."""
    mods = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _resolve(module, node_module, level, is_pkg):
    """The absolute module an ``ImportFrom`` in ``module`` names (None: not numgru's)."""
    if level == 0:
        base = node_module or ""
    else:
        parts = module.split(".")
        if not is_pkg:
            parts = parts[:-1]
        parts = parts[:len(parts) - (level - 1)]
        base = ".".join(parts + ([node_module] if node_module else []))
    return base if base == "numgru" or base.startswith("numgru.") else None


def _imports(mods):
    """{module: [(imported module, names taken from it, line)]} and {module: {local name:
    module}} (the names a module binds to other numgru modules)."""
    edges, bound = {}, {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        out, names = [], {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in mods and a.name != mod:
                        out.append((a.name, (), node.lineno))
                        if a.asname:
                            names[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, node.module, node.level, is_pkg)
                if base is None:
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    if sub in mods:                      # from . import _cpu: a module
                        if sub != mod:
                            out.append((sub, (), node.lineno))
                            names[a.asname or a.name] = sub
                    elif base in mods and base != mod:   # from ._cpu import name
                        out.append((base, (a.name,), node.lineno))
        edges[mod] = out
        bound[mod] = names
    return edges, bound


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan), or a module that
    imports itself."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_the_helpers_find_a_circle_and_a_private_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert _resolve("numgru._cpu", "_pool", 1, False) == "numgru._pool"
    assert _resolve("numgru.datasets", None, 2, True) == "numgru"
    assert _resolve("numgru._cpu", "numpy", 0, False) is None


def test_import_graph_has_no_circle():
    mods = _modules()
    edges, _ = _imports(mods)
    graph = {m: {dst for dst, _, _ in out if dst != "numgru"} for m, out in edges.items()}
    assert "numgru._cpu" in graph["numgru._backend"]          # the walk sees imports
    cycles = _cycles(graph)
    detail = {tuple(c): [f"{m} -> {dst} (line {line})" for m in c
                         for dst, _, line in edges[m] if dst in c]
              for c in cycles}
    assert not cycles, detail


def test_no_module_reads_another_modules_private_names():
    mods = _modules()
    edges, bound = _imports(mods)
    found = set()
    for mod, out in edges.items():
        for dst, names, line in out:
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    found.add((mod, f"{dst}.{name}", line))
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound[mod] and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.add((mod, f"{bound[mod][node.value.id]}.{node.attr}", node.lineno))
    left = sorted(f for f in found if (f[0], f[1]) not in ALLOWED_PRIVATE)
    assert not left, left
