"""The OpenAI-compatible API, driven by the real ``openai`` package against a real running service
(web and worker processes on the embedded default, Whisper-base on real speech)."""
from __future__ import annotations

import pytest
import requests

from tests.support.waiting import make_token

openai = pytest.importorskip("openai")

JFK = "ask not what your country can do for you"

# A live web tier and worker: the system tier.
pytestmark = [pytest.mark.slow, pytest.mark.live]


@pytest.fixture(scope="module")
def openai_service(tmp_path_factory):
    from core.migrate import upgrade
    from tests.support.settings import make_settings
    from tests.support.service import Service

    tmp = tmp_path_factory.mktemp("openai")
    settings = make_settings(tmp)
    upgrade(settings)
    (tmp / "logs").mkdir()
    svc = Service(settings=settings, log_dir=tmp / "logs")
    svc.start_web()
    svc.start_worker()
    svc.tokens = {tenant: make_token(settings, tenant) for tenant in ("tenant-a", "tenant-b")}
    yield svc
    svc.discard()


@pytest.fixture(scope="module")
def openai_sdk(openai_service):
    with openai.OpenAI(base_url=openai_service.base_url + "/v1", api_key=openai_service.tokens["tenant-a"],
                       max_retries=0, timeout=300) as sdk:
        yield sdk


def _as(service, tenant: str) -> dict:
    return {"Authorization": f"Bearer {service.tokens[tenant]}"}


def _transcribe(sdk, path, **kwargs):
    with open(path, "rb") as fh:
        return sdk.audio.transcriptions.create(model="whisper-1", file=fh, **kwargs)


def test_json_and_the_job_is_an_ordinary_tingxie_job(openai_sdk, openai_service, speech_path):
    result = _transcribe(openai_sdk, speech_path("jfk.flac"))
    assert JFK in result.text.lower()
    listed = requests.get(openai_service.base_url + "/api/v1/jobs", headers=_as(openai_service, "tenant-a"), timeout=10).json()
    job = next(j for j in listed["items"] if j["source"] == "openai")
    assert job["status"] == "done" and job["filename"] == "jfk.flac" and job["profile"] == "offline"
    assert job["tenant"] == "tenant-a"


def test_the_api_key_is_a_token_and_another_tenant_sees_nothing(openai_sdk, openai_service, speech_path):
    """The SDK's api_key is a tingxie token: its calls are its tenant's jobs, another tenant's
    token finds none of them, and a key that is not a valid token is refused before any work."""
    result = _transcribe(openai_sdk, speech_path("jfk.flac"), response_format="verbose_json")
    mine = requests.get(openai_service.base_url + "/api/v1/jobs?per_page=100", headers=_as(openai_service, "tenant-a"),
                        timeout=10).json()["items"]
    job_id = mine[0]["id"]
    with openai.OpenAI(base_url=openai_service.base_url + "/v1", api_key=openai_service.tokens["tenant-b"],
                       max_retries=0) as other:
        assert "whisper-1" in [m.id for m in other.models.list()]  # nothing of tenant-a's in there either
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/transcript", f"/api/v1/jobs/{job_id}/media"):
        r = requests.get(openai_service.base_url + path, headers=_as(openai_service, "tenant-b"), timeout=10)
        assert r.status_code == 404 and result.text.split()[0].lower() not in r.text.lower(), path
    theirs = requests.get(openai_service.base_url + "/api/v1/jobs?per_page=100", headers=_as(openai_service, "tenant-b"),
                          timeout=10).json()
    assert job_id not in {j["id"] for j in theirs["items"]} and JFK not in str(theirs).lower()
    with openai.OpenAI(base_url=openai_service.base_url + "/v1", api_key="sk-not-a-tingxie-token",
                       max_retries=0) as bogus:
        with pytest.raises(openai.AuthenticationError) as caught:
            _transcribe(bogus, speech_path("jfk.flac"))
        assert caught.value.body["code"] == "unauthorized"
        with pytest.raises(openai.AuthenticationError):
            bogus.models.list()
    after = requests.get(openai_service.base_url + "/api/v1/jobs?per_page=100", headers=_as(openai_service, "tenant-a"),
                         timeout=10).json()
    assert after["total"] == len(mine)


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_text_formats(openai_sdk, speech_path, fmt):
    result = _transcribe(openai_sdk, speech_path("jfk.flac"), response_format=fmt)
    assert isinstance(result, str) and JFK in result.lower().replace("\n", " ")
    if fmt == "srt":
        assert result.startswith("1\n00:00:")
    if fmt == "vtt":
        assert result.startswith("WEBVTT")


def test_verbose_json_with_words_and_segments(openai_sdk, speech_path):
    result = _transcribe(openai_sdk, speech_path("jfk.flac"), response_format="verbose_json",
                         timestamp_granularities=["word", "segment"])
    assert result.language == "english" and 10.5 < result.duration < 11.5 and JFK in result.text.lower()
    assert result.segments and all(0 <= s.start < s.end <= result.duration for s in result.segments)
    assert [s.id for s in result.segments] == list(range(len(result.segments)))
    words = result.words
    assert len(words) > 15 and all(w.start <= w.end for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    assert "country" in " ".join(w.word for w in words).lower()


def test_verbose_json_defaults_to_segments(openai_sdk, speech_path):
    result = _transcribe(openai_sdk, speech_path("asr_example.wav"), response_format="verbose_json", language="zh",
                         prompt="达摩院")
    assert result.language == "chinese" and "达摩院" in result.text
    assert result.segments and getattr(result, "words", None) is None


def test_models(openai_sdk):
    """The worker here serves the default profile (offline): funasr, which no worker serves, is not listed."""
    ids = [m.id for m in openai_sdk.models.list()]
    assert ids[0] == "gpt-4o-transcribe" and "whisper-1" in ids and "offline" in ids and "funasr" not in ids
    assert openai_sdk.models.retrieve("offline").id == "offline"
    with pytest.raises(openai.NotFoundError):
        openai_sdk.models.retrieve("gpt-9")


def test_errors_use_openais_shape(openai_sdk, speech_path, tmp_path):
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio at all " * 50)
    with pytest.raises(openai.APIStatusError) as caught:
        _transcribe(openai_sdk, bad)
    assert caught.value.status_code == 400  # OpenAI's status for a file it cannot read
    error = caught.value.body
    assert error["code"] == "bad_media" and error["type"] == "invalid_request_error" and "message" in error
    with pytest.raises(openai.NotFoundError) as caught:
        with open(speech_path("jfk.flac"), "rb") as fh:
            openai_sdk.audio.transcriptions.create(model="no-such-model", file=fh)
    assert caught.value.body["code"] == "unknown_model"
    with pytest.raises(openai.BadRequestError) as caught:
        _transcribe(openai_sdk, speech_path("jfk.flac"), response_format="docx")
    assert caught.value.body["param"] == "response_format"


def test_a_call_is_answered_while_more_calls_wait_than_the_tier_has_threads(openai_sdk, openai_service, speech_path):
    """40 calls of another tenant wait for `funasr` jobs that no worker here serves: more waiting
    calls than the web tier has request threads (32). A whisper-1 call is still taken in, and
    answered with its transcript when the worker has finished its job; cancelling the funasr jobs
    then answers the 40."""
    from tests.support.waiting import Callers, assert_answered_canceled, release, wait_for_waiting_calls

    theirs = _as(openai_service, "tenant-b")
    callers = Callers(openai_service.base_url, openai_service.tokens["tenant-b"], speech_path("asr_example.mp3"), 40, model="funasr")
    callers.start()
    job_ids = wait_for_waiting_calls(openai_service, theirs, 40, callers, profile="funasr")
    try:
        assert JFK in _transcribe(openai_sdk, speech_path("jfk.flac")).text.lower()
    finally:
        release(openai_service, theirs, job_ids)
    assert_answered_canceled(callers, job_ids)


def test_past_the_wait_the_answer_names_the_job_and_is_not_retried(tmp_path, speech_path):
    """No worker: the job stays queued, and after TINGXIE_OPENAI_WAIT_S the caller gets its id."""
    from core.migrate import upgrade
    from tests.support.settings import make_settings
    from tests.support.service import Service

    settings = make_settings(tmp_path, openai_wait_s=1.0)
    upgrade(settings)
    (tmp_path / "logs").mkdir()
    svc = Service(settings=settings, log_dir=tmp_path / "logs")
    svc.start_web()
    try:
        token = make_token(settings, "local")
        with openai.OpenAI(base_url=svc.base_url + "/v1", api_key=token, max_retries=2, timeout=60) as sdk, \
                pytest.raises(openai.APIStatusError) as caught:
            _transcribe(sdk, speech_path("jfk.flac"))
        assert caught.value.status_code == 504
        body = caught.value.body
        assert body["code"] == "still_running" and body["job_id"]
        jobs = requests.get(svc.base_url + "/api/v1/jobs", timeout=10).json()
        assert jobs["total"] == 1, "the SDK must not retry the upload"
        assert jobs["items"][0]["id"] == body["job_id"] and jobs["items"][0]["status"] == "queued"
    finally:
        svc.discard()


def test_speaker_labels_as_an_extra_field(openai_sdk, speech_path, tmp_path):
    """Two real voices taking turns; tingxie's `diarize` sent through the SDK's extra_body."""
    from media import find_ffmpeg
    from tests.support.speaker_turns import TWO_VOICES, build

    path = tmp_path / "two-voices.wav"
    build(speech_path("jfk.flac").parent, path, find_ffmpeg(), TWO_VOICES)
    result = _transcribe(openai_sdk, path, response_format="verbose_json", timestamp_granularities=["word", "segment"],
                         extra_body={"diarize": True})
    extra = result.model_extra or {}
    assert [s["id"] for s in extra["speakers"]] == ["S1", "S2"]
    speakers = [s.model_extra["speaker"] for s in result.segments]
    assert speakers[0] == "S1" and "S2" in speakers
    assert all(w.model_extra["speaker"] in ("S1", "S2") for w in result.words)


def test_a_wav_whose_tags_are_latin1_is_transcribed_through_both_doors(openai_sdk, openai_service, speech_path, tmp_path):
    """The probe used to die reading a Latin-1 INFO tag: REST and OpenAI answered 500."""
    import subprocess

    from media import find_ffmpeg
    from tests.support.media_files import with_latin1_info_tag

    plain = tmp_path / "jfk.wav"
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(speech_path("jfk.flac")), "-ac", "1", "-ar", "16000",
                    "-map_metadata", "-1", str(plain)], check=True)
    tagged = with_latin1_info_tag(plain, tmp_path / "tagged.wav")
    assert JFK in _transcribe(openai_sdk, tagged).text.lower()
    with open(tagged, "rb") as fh:
        r = requests.post(openai_service.base_url + "/api/v1/jobs", headers=_as(openai_service, "tenant-a"),
                          files={"file": ("tagged.wav", fh)}, timeout=60)
    assert r.status_code == 202, r.text
    assert openai_service.wait(r.json()["id"], headers=_as(openai_service, "tenant-a"))["status"] == "done"
