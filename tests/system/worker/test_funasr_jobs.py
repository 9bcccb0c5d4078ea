"""Jobs on the funasr profile through the whole service (real web, real worker), with tiny
random-weight models built by funasr's own classes: the text is meaningless, the plumbing is not."""
from __future__ import annotations

import json

import pytest
import requests

from tests.support.requires import require_installed

require_installed("funasr", reason="the funasr profile needs `pip install 'tingxie[funasr]'` (and torch)")

from tests.support.settings import make_settings  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.funasr]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from tests.support.funasr_models import cached_tiny_models

    return cached_tiny_models()  # read only


def test_funasr_job_end_to_end(live_service, tmp_path, tiny_models, speech_path):
    hotword_file = tmp_path / "hotwords.txt"
    hotword_file.write_text("阿里巴巴 20\n通义实验室 30\n", encoding="utf-8")
    settings = make_settings(tmp_path, profile="funasr", model_dir=tiny_models, hotword_file=hotword_file,
                             max_hotwords=3)
    service = live_service(settings)
    ok = service.submit(speech_path("asr_example.wav"), hotwords="达摩院 20", itn="false")
    # The job's and the server file's hotwords together exceed the cap: refused at submission, no job.
    with open(speech_path("asr_example.wav"), "rb") as fh:
        too_many = requests.post(f"{service.base_url}/api/v1/jobs", files={"file": fh},
                                 data={"hotwords": "达摩院,语音,识别"}, timeout=60)
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "bad_hotwords"
    assert "at most 3" in too_many.json()["error"]["message"]
    job = service.wait(ok["id"])
    assert job["status"] == "done", job
    assert job["profile"] == "funasr" and job["options"]["itn"] is False
    data = requests.get(f"{service.base_url}/api/v1/jobs/{ok['id']}/transcript").json()
    assert abs(data["duration_ms"] - 5550) <= 10
    words = [w for s in data["segments"] for w in s["words"]]
    assert words, data
    starts = [w["start_ms"] for w in words]
    assert starts == sorted(starts) and all(0 <= w["start_ms"] <= w["end_ms"] <= data["duration_ms"] for w in words)
    for segment in data["segments"]:  # sentence records carry FunASR's stamp_sents fields
        assert segment["tokens"] and all(segment["start_ms"] <= a <= b <= segment["end_ms"] for a, b in segment["tokens"])
    assert job["options"]["hotwords"] == [["阿里巴巴", 20.0], ["通义实验室", 30.0], ["达摩院", 20.0]]
    # Progress reached the event channel, in order.
    from core.db import make_engine, make_sessionmaker, session_scope
    from core.events import history

    engine = make_engine(settings.database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        kinds = [e["type"] for e in history(session, ok["id"])]
    engine.dispose()
    assert kinds[:2] == ["queued", "running"] and kinds[-1] == "done" and "progress" in kinds
    assert json.dumps(data, ensure_ascii=False)


def test_missing_models_fail_the_job_with_the_command_that_fetches_them(live_service, tmp_path, speech_path):
    settings = make_settings(tmp_path, profile="funasr", model_dir=tmp_path / "empty-models", preload_models=False)
    service = live_service(settings)
    job = service.wait(service.submit(speech_path("asr_example.wav"))["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "model_missing"
    assert "tingxie models download" in job["error"]["message"]
    # The worker survived and still answers.
    assert service.workers[0].poll() is None
