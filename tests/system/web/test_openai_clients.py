"""OpenAI's current audio API, through the official clients as their users call them: the Python
SDK (in the venv) and the Node SDK (from npm, tests/system/web/openai_node), against a real web
tier and an offline worker (Whisper-base on real speech), and against a web tier no worker serves."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.waiting import make_token

openai = pytest.importorskip("openai")

JFK = "ask not what your country can do for you"
NODE_DIR = Path(__file__).parent / "openai_node"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from core.migrate import upgrade
    from tests.support.settings import make_settings
    from tests.support.service import Service

    tmp = tmp_path_factory.mktemp("openai-clients")
    settings = make_settings(tmp, worker_profiles=("offline",))
    upgrade(settings)
    (tmp / "logs").mkdir()
    svc = Service(settings=settings, log_dir=tmp / "logs")
    svc.start_web()
    svc.start_worker()
    svc.tokens = {tenant: make_token(settings, tenant) for tenant in ("tenant-a", "tenant-b")}
    yield svc
    svc.discard()


@pytest.fixture(scope="module")
def sdk_client(service):
    with openai.OpenAI(base_url=service.base_url + "/v1", api_key=service.tokens["tenant-a"], max_retries=0,
                       timeout=300) as sdk:
        yield sdk


def _as(service, tenant: str = "tenant-a") -> dict:
    return {"Authorization": f"Bearer {service.tokens[tenant]}"}


def _transcribe(sdk_client, path, model="gpt-4o-transcribe", **kwargs):
    with open(path, "rb") as fh:
        return sdk_client.audio.transcriptions.create(model=model, file=fh, **kwargs)


def _last_job(service, tenant: str = "tenant-a") -> dict:
    return requests.get(service.base_url + "/api/v1/jobs?per_page=1", headers=_as(service, tenant),
                        timeout=10).json()["items"][0]


def test_stream_yields_a_delta_per_sentence_then_the_text(sdk_client, speech_path):
    events = list(_transcribe(sdk_client, speech_path("jfk.flac"), stream=True))
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done" and set(types[:-1]) == {"transcript.text.delta"} and len(types) >= 2
    done = events[-1]
    assert JFK in done.text.lower() and "".join(e.delta for e in events[:-1]) == done.text
    assert done.usage.type == "duration" and 10.5 < done.usage.seconds < 11.5


@pytest.mark.parametrize("model", ["gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe", "whisper-1",
                                   "offline"])
def test_todays_model_names_run_on_the_deployments_profiles(sdk_client, service, speech_path, model):
    result = _transcribe(sdk_client, speech_path("jfk.flac"), model=model)
    assert JFK in result.text.lower()
    assert result.usage.type == "duration" and 10.5 < result.usage.seconds < 11.5
    assert _last_job(service)["profile"] == "offline"


def test_models_are_those_a_live_worker_serves(sdk_client, service):
    ids = [m.id for m in sdk_client.models.list()]
    assert "gpt-4o-transcribe-diarize" in ids and "whisper-1" in ids and "offline" in ids
    assert "funasr" not in ids  # no worker here serves it
    profiles = {p["name"]: p for p in requests.get(service.base_url + "/api/v1/profiles", headers=_as(service),
                                                    timeout=10).json()["items"]}
    assert profiles["offline"]["workers"] == 1 and profiles["funasr"]["workers"] == 0
    with pytest.raises(openai.NotFoundError) as caught:
        sdk_client.models.retrieve("gpt-9")
    assert caught.value.body["code"] == "unknown_model"


def test_keywords_are_hotwords(sdk_client, service, speech_path):
    result = _transcribe(sdk_client, speech_path("asr_example.wav"), language="zh", keywords=["达摩院"])
    assert "达摩院" in result.text
    assert "达摩院" in json.dumps(_last_job(service)["options"]["hotwords"], ensure_ascii=False)


def test_words_come_without_punctuation(sdk_client, speech_path):
    result = _transcribe(sdk_client, speech_path("jfk.flac"), model="whisper-1", response_format="verbose_json",
                         timestamp_granularities=["word"])
    words = [w.word for w in result.words]
    assert "Americans" in words and not any(w[-1] in ",.;?!" or w[0] in ",.;?!" for w in words), words
    assert "," in result.text  # the text keeps its punctuation
    assert result.usage.type == "duration"


def test_diarized_json_with_the_diarize_model(sdk_client, speech_path, tmp_path):
    from media import find_ffmpeg
    from tests.support.speaker_turns import TWO_VOICES, build

    path = tmp_path / "two-voices.wav"
    build(speech_path("jfk.flac").parent, path, find_ffmpeg(), TWO_VOICES)
    result = _transcribe(sdk_client, path, model="gpt-4o-transcribe-diarize", response_format="diarized_json")
    assert result.task == "transcribe" and result.usage.type == "duration"
    speakers = [s.speaker for s in result.segments]
    assert speakers[0] == "S1" and "S2" in speakers
    assert all(s.type == "transcript.text.segment" and s.start < s.end for s in result.segments)
    with pytest.raises(openai.BadRequestError) as caught:
        _transcribe(sdk_client, speech_path("jfk.flac"), model="gpt-4o-transcribe", response_format="diarized_json")
    assert caught.value.body["param"] == "response_format"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK's own mark on translations
def test_translation_is_whispers_translate_task(sdk_client, service, speech_path):
    with open(speech_path("asr_example.wav"), "rb") as fh:
        result = sdk_client.audio.translations.create(model="whisper-1", file=fh, response_format="verbose_json")
    assert result.text.strip() and result.text.isascii(), result.text  # English, not the Chinese spoken
    assert result.language == "english"
    job = _last_job(service)
    assert job["options"]["task"] == "translate" and job["profile"] == "offline"
    with pytest.raises(openai.BadRequestError) as caught:
        with open(speech_path("jfk.flac"), "rb") as fh:
            sdk_client.audio.translations.create(model="funasr", file=fh)
    assert caught.value.body["code"] == "unsupported_task" and "offline" in caught.value.body["message"]


@pytest.mark.parametrize("extra, param", [
    ({"extra_body": {"colour": "blue"}}, "colour"),
    ({"include": ["logprobs"]}, "include"),
    ({"chunking_strategy": {"type": "server_vad"}}, "chunking_strategy[type]"),
    ({"known_speaker_names": ["agent"]}, "known_speaker_names"),
])
def test_fields_it_cannot_honour_are_refused_by_name(sdk_client, speech_path, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        _transcribe(sdk_client, speech_path("jfk.flac"), **extra)
    error = caught.value.body
    assert error["param"] == param and error["type"] == "invalid_request_error", error


def test_errors_use_openais_statuses(sdk_client, tmp_path):
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio at all " * 50)
    with pytest.raises(openai.BadRequestError) as caught:
        _transcribe(sdk_client, bad)
    assert caught.value.status_code == 400 and caught.value.body["code"] == "bad_media"
    assert caught.value.body["type"] == "invalid_request_error"


def _node_sdk() -> Path:
    """The Node SDK installed from npm into tests/system/web/openai_node (once; node_modules is kept)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the OpenAI Node SDK")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)
    return NODE_DIR


def test_the_node_sdk_as_its_readme_shows(service, speech_path, tmp_path):
    """fs.createReadStream (a chunked body) and toFile uploads, a stream, a translation, a file
    that is not media, the model list."""
    node_dir = _node_sdk()
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio at all " * 50)
    run = subprocess.run(["node", "calls.mjs", service.base_url + "/v1", service.tokens["tenant-a"],
                          str(speech_path("jfk.flac")), str(bad)], cwd=node_dir, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert JFK in results["read_stream"]["ok"]["text"].lower(), results["read_stream"]
    assert results["read_stream"]["ok"]["usage"]["type"] == "duration"
    verbose = results["to_file"]["ok"]
    assert JFK in verbose["text"].lower() and "Americans" in [w["word"] for w in verbose["words"]]
    events = results["stream"]["ok"]
    assert [e["type"] for e in events][-1] == "transcript.text.done" and len(events) >= 2
    assert "".join(e["delta"] for e in events[:-1]) == events[-1]["text"]
    assert JFK in events[-1]["text"].lower()
    assert results["translation"]["ok"]["text"].strip()
    assert results["not_media"]["error"]["status"] == 400 and results["not_media"]["error"]["code"] == "bad_media"
    assert "gpt-4o-transcribe" in results["models"]["ok"] and "funasr" not in results["models"]["ok"]


def test_no_worker_the_model_is_refused_at_once_and_its_jobs_fail(tmp_path, speech_path):
    """No worker at all and TINGXIE_NO_WORKER_S=1: nothing is listed, the OpenAI call is refused
    at once (503 no_worker, not retried), and a native job fails no_worker instead of waiting."""
    import time

    from core.migrate import upgrade
    from tests.support.settings import make_settings
    from tests.support.service import Service

    settings = make_settings(tmp_path, no_worker_s=1.0)
    upgrade(settings)
    (tmp_path / "logs").mkdir()
    svc = Service(settings=settings, log_dir=tmp_path / "logs")
    svc.start_web()
    try:
        job = svc.submit(speech_path("jfk.flac"), profile="funasr")
        time.sleep(1.0)  # the web tier's first TINGXIE_NO_WORKER_S, in which workers may still be starting
        with openai.OpenAI(base_url=svc.base_url + "/v1", api_key=make_token(settings, "local"), max_retries=2,
                           timeout=60) as sdk:
            assert [m.id for m in sdk.models.list()] == []
            with pytest.raises(openai.InternalServerError) as caught:
                _transcribe(sdk, speech_path("jfk.flac"), model="funasr")
        error = caught.value.body
        assert caught.value.status_code == 503 and error["code"] == "no_worker" and "funasr" in error["message"]
        assert svc.jobs()["total"] == 1, "refused before any job, and not retried"
        profiles = requests.get(svc.base_url + "/api/v1/profiles", timeout=10).json()["items"]
        assert {p["name"]: p["workers"] for p in profiles} == {"offline": 0, "funasr": 0}
        ended = svc.wait(job["id"], timeout_s=120)
        assert ended["status"] == "failed" and ended["error"]["code"] == "no_worker", ended
        assert "tingxie worker --profiles funasr" in ended["error"]["message"]
    finally:
        svc.discard()
