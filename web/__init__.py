"""The web tier: a Flask factory. Imports core only (never pipeline, torch or numpy)."""
from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from core import storage
from core.db import make_engine, make_sessionmaker
from core.queue import QueueClient
from core.settings import Settings


def create_app(settings: Settings | None = None, test_config: dict | None = None) -> Flask:
    settings = settings or Settings.from_env()
    storage.ensure_dirs(settings)

    from web.uploads import UploadRequest

    app = Flask(__name__, static_folder=None)
    app.request_class = UploadRequest
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        TINGXIE_SETTINGS=settings,
    )
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    if test_config:
        app.config.update(test_config)

    engine = make_engine(settings.database_url)
    app.extensions["tingxie"] = {
        "settings": settings,
        "db": make_sessionmaker(engine, settings.events_url),
        "engine": engine,
        "queue": QueueClient(settings),
    }

    from web import api, events, pages

    app.register_blueprint(api.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(pages.bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error={"code": code, "message": exc.description}), exc.code

    return app
