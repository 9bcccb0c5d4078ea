"""Dependency direction: web -> core <- worker -> pipeline, and ``media`` a leaf both use. Checked in
fresh interpreters."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.settings import REPO

pytestmark = pytest.mark.subprocess


HEAVY = ("torch", "numpy", "ctranslate2", "onnxruntime", "faster_whisper", "funasr")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_web_loads_no_model_code():
    loaded = _loaded_after("import web; web.create_app")
    assert not {m for m in loaded if m.split(".")[0] in (*HEAVY, "av")}  # PyAV loads in the probe's child only
    assert "pipeline" not in loaded and "worker" not in loaded


def test_creating_the_app_loads_no_model_code(tmp_path):
    loaded = _loaded_after(
        f"from core.settings import Settings; import web; web.create_app(Settings(data_dir={str(tmp_path)!r}))"
    )
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_core_and_pipeline_stay_in_their_lane():
    assert not {m for m in _loaded_after("import core.jobs, core.queue, core.events") if m.split(".")[0] in (*HEAVY, "flask", "web", "pipeline")}
    assert not {m for m in _loaded_after("import pipeline, pipeline.types") if m.split(".")[0] in ("flask", "celery", "sqlalchemy", "core", "web", "worker")}


def _top_level(statement: str) -> set[str]:
    return {m.split(".")[0] for m in _loaded_after(statement)}


def test_the_doors_web_and_gateway_import_core_only():
    assert not _top_level("import gateway, cli.gateway") & {*HEAVY, "flask", "web", "pipeline", "worker"}
    assert not _top_level("import web, web.openai, web.api, web.events") & {*HEAVY, "gateway", "pipeline", "worker"}


def test_the_worker_imports_no_door():
    assert not _top_level("import worker.celery_app, worker.tasks, worker.runtime") & {"flask", "web", "gateway"}


def test_core_imports_no_door_and_no_worker():
    assert not _top_level(
        "import core.submit, core.services, core.options, core.jobs, core.settings, core.errors"
    ) & {*HEAVY, "flask", "web", "gateway", "worker", "pipeline"}


def test_media_is_a_leaf():
    """The web tier probes uploads through media: importing it loads neither PyAV nor numpy, and
    nothing of the packages that use it."""
    loaded = _loaded_after("import media, media.probe, media.decode")
    assert not {m for m in loaded if m.split(".")[0] in (*HEAVY, "av", "core", "pipeline", "web", "worker", "flask")}


def test_the_product_imports_nothing_from_tests():
    """Test-model builders live in tests/support, which is not shipped: no product module may need them."""
    offenders = []
    for package in ("core", "web", "worker", "pipeline", "cli", "migrations"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in ("tests", "bench")]
    assert offenders == []


def test_tests_import_nothing_from_bench():
    """Benchmarks may use tests/support; a test never needs a benchmark (their helpers move to tests/support)."""
    offenders = []
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "bench"]
    assert offenders == []


PRODUCT = ("core", "web", "gateway", "worker", "pipeline", "media", "cli")


def _product_modules() -> dict[str, Path]:
    modules = {}
    for package in PRODUCT:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules ``module`` imports, wherever the import stands (a function's included:
    an import moved into a function to dodge a circle is still a circle); a name imported from a
    package is that package, a submodule imported from it is the submodule."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def test_no_import_cycles_in_the_product():
    """No two product modules import each other, directly or round a longer circle."""
    modules = _product_modules()
    graph = {module: _imports_of(module, path, modules) for module, path in modules.items()}
    cycles, done = [], set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycles.append(trail[trail.index(module):] + [module])
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, trail + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert [" -> ".join(cycle) for cycle in cycles] == []


def test_core_imports_no_pipeline_anywhere():
    """Not even inside a function: core's values are its own (pipeline sees core only through the worker)."""
    modules = _product_modules()
    offenders = {module: sorted(t for t in _imports_of(module, path, modules) if t.split(".")[0] in ("pipeline", "worker"))
                 for module, path in modules.items() if module.split(".")[0] == "core"}
    assert {module: found for module, found in offenders.items() if found} == {}


def test_every_module_of_web_and_gateway_loads_no_numpy_or_torch():
    """Every module of the two doors (the web server, the events sockets, the gateway's TLS...), and
    the event hub they share, imported together: no numpy, no torch, no model runtime."""
    modules = sorted(m for m in _product_modules() if m.split(".")[0] in ("web", "gateway")) + ["core.hub"]
    loaded = _top_level("import " + ", ".join(modules))
    assert not loaded & {*HEAVY, "pipeline", "worker"}


def test_the_contract_imports_nothing_but_the_standard_library():
    """What crosses the tiers (contract/) loads in any process: its modules name only the standard
    library and each other, and importing all of it loads nothing else."""
    offenders = []
    for path in (REPO / "contract").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names
                          if n.split(".")[0] not in sys.stdlib_module_names and n.split(".")[0] != "contract"]
    assert offenders == []
    modules = ", ".join(sorted(f"contract.{p.stem}" for p in (REPO / "contract").glob("*.py") if p.stem != "__init__"))
    added = _top_level(f"import contract, {modules}") - _top_level("pass")  # less what the interpreter's site loads
    assert added - set(sys.stdlib_module_names) == {"contract"}


def _says_why(comment: str) -> bool:
    text = comment.strip().lstrip("#").strip()
    return bool(text) and not text.startswith(("noqa", "type:"))


def test_every_import_inside_a_function_says_why():
    """Imports sit at the top of the module; one inside a function keeps a heavy or optional
    dependency out of a process that must not load it, and says so in a comment: on its line, or on
    the line above it or above the run of imports it stands in. A bare ``noqa`` is no reason."""
    offenders = []
    for package in ("core", "web", "gateway", "worker", "pipeline"):
        for path in sorted((REPO / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            imports = {node.lineno: node for function in ast.walk(ast.parse("\n".join(lines), str(path)))
                       if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))}
            in_imports = {n for node in imports.values() for n in range(node.lineno, node.end_lineno + 1)}
            for node in imports.values():
                above = node.lineno - 1
                while above in in_imports or (above > 0 and not lines[above - 1].strip()):
                    above -= 1
                line_above = lines[above - 1].strip() if above else ""
                own = [lines[n - 1].partition("#")[2] for n in range(node.lineno, node.end_lineno + 1)]
                if not (any(_says_why(c) for c in own) or line_above.startswith("#") and _says_why(line_above)):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert offenders == []


def test_tests_share_helpers_only_through_tests_support():
    """A helper two test modules need lives in tests/support (fixtures in tests/support/fixtures.py),
    never in a test module or a folder's conftest that another module imports."""
    offenders = []
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names
                          if n.split(".")[0] == "tests" and n not in ("tests", "tests.support")
                          and not n.startswith("tests.support.")]
    assert offenders == []


def test_each_fixture_name_means_one_thing():
    """No fixture name is defined twice anywhere under tests/: a test keeps its meaning when it moves."""
    defined: dict[str, list[str]] = {}
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and any(
                    "fixture" in ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list):
                defined.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    assert {name: where for name, where in defined.items() if len(where) > 1} == {}
