"""Dependency direction: web -> core <- worker -> pipeline, and ``media`` a leaf both use. Checked in
fresh interpreters."""
import ast
import subprocess
import sys

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
