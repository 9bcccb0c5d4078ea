"""The OpenAPI document: generated from the schemas that validate requests, and honoured by the
service. schemathesis generates requests for every operation of the served document (valid and
invalid ones) and checks that none gets a 5xx and every response matches the document."""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings as hypothesis_settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def openapi_app(tmp_path_factory, speech_dir):
    from core.migrate import upgrade
    from tests.support.settings import make_settings
    from web import create_app

    # No worker: jobs stay queued; the OpenAI route answers 504 after a short wait. Every request
    # needs a token; schemathesis sends one (AUTH below). No rate limit: it sends hundreds.
    settings = make_settings(tmp_path_factory.mktemp("openapi"), openai_wait_s=0.2, webhook_allow=("127.0.0.1",),
                             auth="required", rate_limit="off", upload_rate_limit="off")
    upgrade(settings)
    app = create_app(settings)
    from core import tokens
    from core.db import session_scope

    with session_scope(app.extensions["tingxie"].db) as session:
        app.config["TEST_AUTH"] = {"Authorization": f"Bearer {tokens.create(session, tenant='local').secret}"}
    _seed(app, speech_dir)
    yield app
    app.extensions["tingxie"].close()


def _seed(app, speech_dir):
    """Jobs in every end state, so listing them checks the Job schema against real rows."""
    import io

    from core import jobs
    from core.db import session_scope

    client = app.test_client()
    ids = []
    for hotwords in ("达摩院 20", "", "ComfyUI"):
        form = {"file": (io.BytesIO((speech_dir / "asr_example.wav").read_bytes()), "asr_example.wav"),
                "hotwords": hotwords, "callback_url": "http://127.0.0.1:9/hook"}
        response = client.post("/api/v1/jobs", data=form, content_type="multipart/form-data",
                               headers=app.config["TEST_AUTH"])
        assert response.status_code == 202, response.json
        ids.append(response.json["id"])
    transcript = {"text": "欢迎。", "language": "zh", "duration_ms": 5550, "segments": [
        {"start_ms": 0, "end_ms": 900, "text": "欢迎。", "punc": "。", "tokens": [[0, 900]],
         "words": [{"start_ms": 0, "end_ms": 900, "text": "欢迎"}]}]}
    with session_scope(app.extensions["tingxie"].db) as s:
        jobs.complete(s, ids[0], jobs.claim(s, ids[0]), transcript, warnings=["a warning"])
        jobs.fail(s, ids[1], jobs.claim(s, ids[1]), "bad_media", "not audio")


def test_the_document_describes_both_apis(openapi_app):
    spec = openapi_app.test_client().get("/api/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    paths = set(spec["paths"])
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/transcript", "/api/v1/jobs/{job_id}/media",
            "/v1/audio/transcriptions", "/v1/models", "/v1/models/{model}"} <= paths
    form = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["$ref"].endswith("/JobForm")
    job_form = spec["components"]["schemas"]["JobForm"]
    assert {"file", "language", "itn", "hotwords", "profile", "callback_url"} <= set(job_form["properties"])
    assert "source_url" in job_form["properties"] and "required" not in job_form  # a file, or a link to one
    assert not [name for name in spec["components"]["schemas"] if name[-1].isdigit()], "a schema registered twice"
    # Bearer tokens, documented on every API operation; health checks and signing in need none.
    assert spec["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["BearerAuth"][
            "description"]}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            public = path in ("/healthz", "/readyz") or (path == "/api/v1/session" and method in ("post", "delete"))
            assert ("security" not in operation) == public, (method, path)
            if not public:
                assert operation["security"] == [{"BearerAuth": []}] and "401" in operation["responses"]


def test_the_docs_page_is_served_without_a_cdn(openapi_app):
    client = openapi_app.test_client()
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.data.decode()
    assert "http://" not in html and "https://" not in html and "<script>" not in html
    assert client.get("/api/v1/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/v1/docs/assets/../../openapi_app.py").status_code == 404


@pytest.mark.slow
def test_no_server_errors_and_every_response_matches_the_document(openapi_app):
    """Each operation of the served document, driven by its own hypothesis strategy (valid and
    invalid requests alike). schemathesis's pytest plugin is not used: its lazy loader does not
    run on this pytest."""
    from hypothesis import given

    api = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", openapi_app)
    failures, calls = [], []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                             database=None)
        def run(case):
            calls.append(case.call_and_validate(checks=CHECKS, headers=openapi_app.config["TEST_AUTH"]).status_code)

        try:
            run()
        except Exception as exc:  # every operation is tried; the failures are reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(calls) >= 5 * len(operations) and {200, 400, 404} <= set(calls), sorted(set(calls))


def test_every_operation_sits_under_one_declared_tag_and_no_tag_is_empty(client):
    """The docs page groups operations by tag: none may fall under "default", and no section may be empty."""
    spec = client.get("/api/v1/openapi.json").json
    declared = [tag["name"] for tag in spec["tags"]]
    used = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert len(operation.get("tags", [])) == 1 and operation["tags"][0] in declared, (method, path)
                used.setdefault(operation["tags"][0], []).append(path)
    assert sorted(used) == sorted(declared) == ["Batches", "Jobs", "OpenAI", "Service", "Session"]
    assert all(tag.get("description") for tag in spec["tags"])
    assert "/v1/audio/transcriptions" in used["OpenAI"] and "/api/v1/jobs" in used["Jobs"]
