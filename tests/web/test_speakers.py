"""Speaker labels through the doors: the request fields of REST, OpenAI and the gateway reach the
stored options; names given to a diarized transcript's speakers reach every export."""
from __future__ import annotations

import dataclasses
import io
import json

import pytest

from contract import Transcript
from core import jobs
from core.db import session_scope
from gateway.protocol import FileRequest, parse_config, result_frame
from tests.support.settings import embedded_only

DIARIZED = {
    "text": "Hello there. 你好。", "language": "en", "duration_ms": 4000,
    "speakers": [{"id": "S1", "name": None}, {"id": "S2", "name": None}],
    "segments": [
        {"start_ms": 0, "end_ms": 1500, "text": "Hello there.", "punc": ".", "speaker": "S1", "tokens": [[0, 700], [800, 1500]],
         "words": [{"start_ms": 0, "end_ms": 700, "text": "Hello", "speaker": "S1"},
                   {"start_ms": 800, "end_ms": 1500, "text": "there.", "speaker": "S1"}]},
        {"start_ms": 2500, "end_ms": 3500, "text": "你好。", "punc": "。", "speaker": "S2", "tokens": [[2500, 3000], [3000, 3500]],
         "words": [{"start_ms": 2500, "end_ms": 3000, "text": "你", "speaker": "S2"},
                   {"start_ms": 3000, "end_ms": 3500, "text": "好。", "speaker": "S2"}]},
    ],
}


def _upload(client, path, **form):
    form["file"] = (io.BytesIO(path.read_bytes()), path.name)
    return client.post("/api/v1/jobs", data=form, content_type="multipart/form-data")


def _done_job(client, app, speech_path, data=DIARIZED) -> str:
    job_id = _upload(client, speech_path("jfk.flac"), diarize="true").json["id"]
    with session_scope(app.extensions["tingxie"].db) as s:
        jobs.complete(s, job_id, jobs.claim(s, job_id), data)
    return job_id


def test_rest_speaker_fields_are_stored_and_a_count_implies_diarize(client, speech_path):
    r = _upload(client, speech_path("jfk.flac"), num_speakers="2")
    assert r.status_code == 202, r.json
    options = client.get(r.json["links"]["self"]).json["options"]
    assert options["diarize"] is True and options["num_speakers"] == 2 and options["min_speakers"] is None
    plain = client.get(_upload(client, speech_path("jfk.flac")).json["links"]["self"]).json["options"]
    assert plain["diarize"] is False


@pytest.mark.parametrize("form,says", [
    ({"num_speakers": "0"}, "num_speakers"),
    ({"min_speakers": "3", "max_speakers": "2"}, "min_speakers (3) is more than max_speakers (2)"),
    ({"diarize": "false", "num_speakers": "2"}, "need diarize=true"),
    ({"num_speakers": "2", "max_speakers": "3"}, "not both"),
    ({"num_speakers": "1000"}, "1 to 32"),
])
@embedded_only
def test_bad_speaker_fields_are_refused(client, speech_path, form, says):
    r = _upload(client, speech_path("jfk.flac"), **form)
    assert r.status_code == 400 and r.json["error"]["code"] in ("bad_speakers", "bad_option"), r.json
    assert says in r.json["error"]["message"]


def test_speakers_are_named_and_every_export_uses_the_names(client, app, speech_path):
    job_id = _done_job(client, app, speech_path)
    url = f"/api/v1/jobs/{job_id}"
    r = client.put(url + "/speakers", json={"names": {"S1": "  Alice ", "S2": "王芳"}})
    assert r.status_code == 200, r.json
    assert r.json["speakers"] == [{"id": "S1", "name": "Alice"}, {"id": "S2", "name": "王芳"}]
    data = client.get(url + "/transcript").json
    assert data["speakers"][0]["name"] == "Alice" and data["segments"][0]["speaker"] == "S1"  # JSON keeps ids
    txt = client.get(url + "/transcript?format=txt").data.decode()
    assert txt.splitlines() == ["[Alice] Hello there.", "[王芳] 你好。"]
    srt = client.get(url + "/transcript?format=srt").data.decode()
    assert "[Alice] Hello there." in srt and "[王芳] 你好。" in srt
    vtt = client.get(url + "/transcript?format=vtt").data.decode()
    assert "<v Alice>Hello there." in vtt and "<v 王芳>你好。" in vtt
    # A name is cleared with null; then the id shows again.
    client.put(url + "/speakers", json={"names": {"S1": None}})
    assert "[S1] Hello there." in client.get(url + "/transcript?format=txt").data.decode()


def test_renaming_refuses_what_it_cannot_do(client, app, speech_path):
    job_id = _done_job(client, app, speech_path)
    url = f"/api/v1/jobs/{job_id}/speakers"
    assert client.put(url, json={"names": {"S9": "x"}}).json["error"]["code"] == "bad_speakers"
    assert client.put(url, json={"names": {"S1": "x" * 65}}).status_code == 400
    assert client.put(url, json={"names": {"S1": "bad\x00name"}}).status_code == 400
    assert client.put(url, data="not json", content_type="application/json").status_code == 400
    assert client.put("/api/v1/jobs/nope/speakers", json={"names": {"S1": "x"}}).status_code == 404
    queued = _upload(client, speech_path("jfk.flac")).json["id"]
    assert client.put(f"/api/v1/jobs/{queued}/speakers", json={"names": {}}).json["error"]["code"] == "not_ready"
    plain = _done_job(client, app, speech_path, {**DIARIZED, "speakers": None})
    r = client.put(f"/api/v1/jobs/{plain}/speakers", json={"names": {"S1": "x"}})
    assert r.status_code == 400 and "not diarized" in r.json["error"]["message"]


def test_openai_extra_fields_reach_the_job(settings, speech_path, migrated):
    """No worker: the call answers 504 after a short wait, naming the job, whose options are stored."""
    from web import create_app

    settings = dataclasses.replace(settings, openai_wait_s=0.1)
    migrated.migrate(settings)
    client = create_app(settings).test_client()
    r = client.post("/v1/audio/transcriptions", content_type="multipart/form-data", data={
        "file": (io.BytesIO(speech_path("jfk.flac").read_bytes()), "jfk.flac"), "model": "whisper-1",
        "max_speakers": "3"})
    assert r.status_code == 504, r.json
    options = client.get(f"/api/v1/jobs/{r.json['error']['job_id']}").json["options"]
    assert options["diarize"] is True and options["max_speakers"] == 3
    bad = client.post("/v1/audio/transcriptions", content_type="multipart/form-data", data={
        "file": (io.BytesIO(speech_path("jfk.flac").read_bytes()), "jfk.flac"), "model": "whisper-1",
        "num_speakers": "0"})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_speakers"


def test_the_gateway_takes_diarize_and_answers_with_funasrs_spk():
    request = parse_config({"mode": "offline", "wav_name": "m", "diarize": True, "num_speakers": "2"})
    assert request.diarize is True and request.num_speakers == 2
    frame = result_frame(FileRequest(mode="offline", wav_name="m"), Transcript.from_dict(DIARIZED))
    assert [s["spk"] for s in frame["stamp_sents"]] == [0, 1]
    assert json.loads(frame["timestamp"])[0] == [0, 700]
    plain = result_frame(FileRequest(mode="offline", wav_name="m"), Transcript.from_dict({**DIARIZED, "speakers": None}))
    assert all("spk" not in s for s in plain["stamp_sents"])
