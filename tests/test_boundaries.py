"""Dependency direction: web -> core <- worker -> pipeline, and ``media`` a leaf both use. Checked in
fresh interpreters."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[1]

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
