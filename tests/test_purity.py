"""The core is pure: no I/O modules, no clock, no global random (architecture.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import mxselect

CORE_MODULES = [
    "mxselect._answers",
    "mxselect._core",
    "mxselect._domain",
    "mxselect._lookup",
    "mxselect._model",
    "mxselect._policy",
    "mxselect._rules",
    "mxselect._sts",
    "mxselect._tlsrpt",
    "mxselect.exceptions",
    "mxselect.typing",
]
#: The core's layers, lowest first (the header of mxselect/_core.py): a module imports from
#: its own layer or those below it, never from a layer above.
LAYERS = [
    # the values
    {"_answers", "_domain", "_model", "_policy", "_sts", "_tlsrpt", "exceptions", "typing"},
    {"_lookup"},  # the lookup engine: chains, memo, budget
    {"_rules"},  # the rules, one pure function each
    {"_core"},  # the plan: its API and the glue
]
FORBIDDEN = ("dns", "asyncio", "socket", "time", "selectors", "ssl")
PACKAGE = Path(mxselect.__file__).parent


def test_core_imports_no_io_modules_in_a_fresh_interpreter() -> None:
    """Importing the core modules loads neither dns, asyncio, socket nor time.

    Run with -S (no site: site-packages may import 'time' at start-up) so that anything the
    core pulls in shows up as new. The package is registered without running its __init__
    (which also loads the drivers), so only the core modules and what they import load.
    """
    paths = [str(PACKAGE.parent), *(p for p in sys.path if "site-packages" in p)]
    code = f"""
import json, sys, types
sys.path[:0] = {paths!r}
package = types.ModuleType("mxselect")
package.__path__ = [{str(PACKAGE)!r}]
sys.modules["mxselect"] = package
# The dependencies first: attrs imports threading, which imports time (CPython also preloads
# time at start-up). Then drop time, so that a re-import by a core module would show.
import attrs, idna, ipaddress, random
sys.modules.pop("time", None)
before = set(sys.modules)
for name in {CORE_MODULES!r}:
    __import__(name)
new = sorted(set(sys.modules) - before)
print(json.dumps(new))
"""
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == []
    assert "mxselect._core" in loaded


def test_core_sources_import_nothing_forbidden_and_never_call_global_random() -> None:
    """Static check of the core's imports, and no call of random.<function> (only the
    random.Random / random.SystemRandom types)."""
    for module in CORE_MODULES:
        path = PACKAGE / (module.split(".")[1] + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            assert [n for n in names if n.split(".")[0] in FORBIDDEN] == [], (module, names)
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "random"
            ):
                assert node.attr in ("Random", "SystemRandom"), (module, node.attr)


def test_import_mxselect_does_not_load_dnspython_or_asyncio() -> None:
    """`import mxselect` stays light: the adapter, asyncio and sockets load only when used."""
    paths = [str(PACKAGE.parent), *(p for p in sys.path if "site-packages" in p)]
    code = (
        "import sys, json; import mxselect; "
        "print(json.dumps([m for m in ('dns', 'asyncio', 'socket', 'mxselect.dnspython') "
        "if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {paths!r}; " + code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == []


def test_core_layers_import_only_downwards() -> None:
    """Values <- lookup engine <- rules <- plan: no core module imports a higher layer, and
    no core module imports a driver, an adapter or a service module."""
    layer_of = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    assert sorted(layer_of) == sorted(m.split(".")[1] for m in CORE_MODULES)
    for name, level in layer_of.items():
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mxselect"):
                targets = [(node.module or "").partition(".")[2] or "__init__"]
            else:
                continue
            for target in targets:
                assert target in layer_of, (name, target)  # nothing outside the core
                assert layer_of[target] <= level, (name, "imports the higher layer", target)
