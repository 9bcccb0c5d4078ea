"""One table maps every error code to its HTTP status: nothing raised is missing from it."""
import pipeline.errors
from core import errors, hotwords
from core.errors import STATUS_BY_CODE, TingxieError, http_status


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_error_class_has_a_status():
    codes = {cls.code for cls in _subclasses(TingxieError)} | {cls.code for cls in _subclasses(pipeline.errors.PipelineError)}
    assert codes and not codes - set(STATUS_BY_CODE), codes - set(STATUS_BY_CODE)


def test_the_web_tiers_codes_are_in_the_table():
    from web import errors as web_errors

    assert not set(web_errors._CODE_BY_STATUS.values()) - set(STATUS_BY_CODE)
    assert not set(web_errors._FIELD_CODES.values()) - set(STATUS_BY_CODE)


def test_statuses_and_shape():
    assert http_status("bad_media") == 415 and http_status("too_long") == 413 and http_status("not_found") == 404
    assert http_status("never-declared") == 500
    exc = hotwords.HotwordError("weight nan")
    assert exc.status == 400 and exc.to_json() == {"error": {"code": "bad_hotwords", "message": "weight nan"}}
    assert errors.BadOptionError("x", code="unsupported_language").status == 400
