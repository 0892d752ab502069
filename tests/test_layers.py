"""The import graph of ``pgu_rllib`` (every import, lazy ones inside functions included) has no
edge that runs up a layer and no cycle. Layers: core < rllib < tasks < service < cli/report.
The package ``__init__`` is the public facade: it may load any layer (lazily).

``python tests/test_layers.py`` prints the graph's levels for a reader."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "pgu_rllib"
LAYERS = {"_lazy": 1, "core": 1, "rllib": 2, "tasks": 3, "service": 4, "cli": 5, "report": 5}
FACADE = "pgu_rllib"


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py") if "versions" not in p.parts}


def _resolve(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    modules = _modules()
    edges = {m: set() for m in modules}
    for mod, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t.startswith("pgu_rllib"):
                    target = _resolve(t, modules)
                    if target and target != mod:
                        edges[mod].add(target)
    return edges


def layer(mod: str) -> int:
    parts = mod.split(".")
    return 0 if mod == FACADE else LAYERS[parts[1]]


def levels(edges) -> dict[str, int]:
    """Longest import chain below each module (0 = imports nothing of pgu_rllib)."""
    memo: dict[str, int] = {}

    def depth(m, stack=()):
        if m in stack:
            raise AssertionError(f"import cycle: {' -> '.join((*stack, m))}")
        if m not in memo:
            memo[m] = 1 + max((depth(t, (*stack, m)) for t in edges[m]), default=-1)
        return memo[m]

    for m in edges:
        depth(m)
    return memo


def test_no_import_runs_up_a_layer():
    upward = [(a, b) for a, targets in graph().items() if a != FACADE for b in targets if layer(b) > layer(a)]
    assert upward == [], upward


def test_no_import_cycles():
    edges = {m: t for m, t in graph().items() if m != FACADE}
    levels(edges)  # raises on a cycle


@pytest.mark.parametrize("name", ["PGUConfig", "PGU", "PGUTorchLearner", "PRESETS", "make_scale", "UpdateRule",
                                  "search", "evaluate", "best", "export"])
def test_public_names_stay_importable_from_the_package(name):
    import pgu_rllib

    assert name in pgu_rllib.__all__
    obj = getattr(pgu_rllib, name)
    assert obj is not None and (name not in ("search", "best", "export", "evaluate") or callable(obj))


def test_core_imports_no_ray():
    import subprocess
    import sys

    code = "import sys, pgu_rllib.core, pgu_rllib; print(any(m == 'ray' or m.startswith('ray.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


if __name__ == "__main__":
    edges = {m: t for m, t in graph().items() if m != FACADE}
    lv = levels(edges)
    print(f"{len(edges)} modules, {max(lv.values()) + 1} levels, {sum(map(len, edges.values()))} edges")
    for m in sorted(lv, key=lambda m: (lv[m], m)):
        print(f"  level {lv[m]}  {m}  -> {', '.join(sorted(edges[m])) or '-'}")
