"""The web tier: an APIFlask factory. Imports core only (never pipeline, torch or numpy).

APIFlask validates each request against the schema that also documents it, so the OpenAPI
document served at ``/api/v1/openapi.json`` cannot drift from what the routes accept.
"""
from __future__ import annotations

import time

from apiflask import APIFlask

from core import storage
from core.services import Services
from core.workers import ServedProfiles
from core.settings import Settings
from web import api, auth, batches, docs, errors, headers, inputs, limits, metrics, openai, pages, schemas, service
from web.headers import behind_proxies
from web.uploads import UploadRequest, discard_spooled

__version__ = "0.1.0"


def create_app(settings: Settings | None = None, test_config: dict | None = None) -> APIFlask:
    settings = settings or Settings.from_env()
    app = APIFlask(
        __name__,
        title="tingxie",
        version=__version__,
        spec_path=docs.SPEC_PATH,
        docs_path=None,  # web.docs serves the docs page from local files (no CDN)
        static_folder=None,
        json_errors=False,  # web.errors answers every error in the API's own shape
    )
    app.request_class = UploadRequest
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        OPENAPI_VERSION="3.1.0",
        VALIDATION_ERROR_STATUS_CODE=400,
        VALIDATION_ERROR_DESCRIPTION="the request is not valid",
        VALIDATION_ERROR_SCHEMA=schemas.Error,
        HTTP_ERROR_SCHEMA=schemas.Error,
        AUTO_404_RESPONSE=False,
        SPEC_PROCESSOR_PASS_OBJECT=True,
        DESCRIPTION="Self-hosted batch transcription. Native API under /api/v1, OpenAI-compatible API under /v1.",
        # No TAGS here: APIFlask tags each operation with its blueprint's tag (web.api's "Jobs", …) only
        # when the tag list is left to it; a list set here would leave every operation untagged.
    )
    app.json = inputs.DepthLimitedJSON(app)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    if test_config:
        app.config.update(test_config)

    @app.spec_processor
    def _components(spec):
        """Schemas that hand-written response objects reference by name."""
        for name, schema in {**schemas.COMPONENTS, **openai.COMPONENTS, **auth.COMPONENTS}.items():
            if name not in spec.components.schemas:
                spec.components.schema(name, schema=schema)
        spec.components.schemas["JobOptionsOut"]["properties"]["hotwords"]["items"] = schemas.JobOptionsOut.HOTWORD_PAIR
        return spec

    app.extensions["tingxie"] = services = Services.start(settings)
    app.extensions["tingxie.served"] = ServedProfiles(services.db)
    app.extensions["tingxie.started"] = time.monotonic()  # web.openai gives workers TINGXIE_NO_WORKER_S to appear
    # Uploads a stopped web tier was receiving (nobody holds their spool files any more).
    storage.clean_spool(settings, settings.spool_max_age_s)
    errors.install(app)
    inputs.install_url_check(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(openai.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(service.bp)
    app.register_blueprint(docs.bp)
    metrics.init_app(app)
    app.register_blueprint(pages.bp)
    # Order matters: the limiter counts a request (by token, else address) before auth refuses it.
    limits.install(app, settings)
    auth.install(app)
    inputs.install_json_check(app)
    headers.install(app)
    app.teardown_request(lambda _exc: discard_spooled())
    if settings.trusted_proxies:
        app.wsgi_app = behind_proxies(app.wsgi_app, settings.trusted_proxies)
    return app

