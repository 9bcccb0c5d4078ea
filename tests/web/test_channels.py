"""Channels apart through the doors: REST and OpenAI fields reach the stored options, bad values
are refused before a job exists, and a channel-labelled transcript shows its channels' names in
every export, renamed like speakers."""
from __future__ import annotations

import dataclasses
import io
import json

import pytest

from contract import Transcript
from core import jobs
from core.db import session_scope
from core.models import Job
from gateway.protocol import FileRequest, result_frame

# What pipeline.channels writes for a two-channel call: customer (channel 1) speaks first.
CALL = {
    "text": "你好。 Hello, how can I help?", "language": "en", "duration_ms": 6000,
    "speakers": [{"id": "C0", "name": "agent"}, {"id": "C1", "name": "customer"}],
    "segments": [
        {"start_ms": 500, "end_ms": 1500, "text": "你好。", "punc": "。", "speaker": "C1", "channel": 1,
         "tokens": [[500, 1000], [1000, 1500]],
         "words": [{"start_ms": 500, "end_ms": 1000, "text": "你", "speaker": "C1"},
                   {"start_ms": 1000, "end_ms": 1500, "text": "好。", "speaker": "C1"}]},
        {"start_ms": 2000, "end_ms": 4000, "text": "Hello, how can I help?", "punc": "?", "speaker": "C0", "channel": 0,
         "tokens": [],
         "words": [{"start_ms": 2000, "end_ms": 2600, "text": "Hello,", "speaker": "C0"},
                   {"start_ms": 2700, "end_ms": 3000, "text": "how", "speaker": "C0"},
                   {"start_ms": 3000, "end_ms": 3300, "text": "can", "speaker": "C0"},
                   {"start_ms": 3300, "end_ms": 3500, "text": "I", "speaker": "C0"},
                   {"start_ms": 3500, "end_ms": 4000, "text": "help?", "speaker": "C0"}]},
    ],
}


def _upload(client, path, **form):
    form["file"] = (io.BytesIO(path.read_bytes()), path.name)
    return client.post("/api/v1/jobs", data=form, content_type="multipart/form-data")


def test_rest_channel_fields_are_stored(client, app, stereo_call):
    r = _upload(client, stereo_call, channels="separate", channel_names=" agent, customer ")
    assert r.status_code == 202, r.json
    options = client.get(r.json["links"]["self"]).json["options"]
    assert options["channels"] == "separate" and options["channel_names"] == ["agent", "customer"]
    assert options["diarize"] is False
    with session_scope(app.extensions["tingxie"].db) as s:
        stored = jobs.options_of(s.get(Job, r.json["id"]))
    assert stored.channels == "separate" and stored.channel_names == ("agent", "customer")
    plain = client.get(_upload(client, stereo_call).json["links"]["self"]).json["options"]
    assert "channels" not in plain and "channel_names" not in plain  # a mixed job shows what it always showed


@pytest.mark.parametrize("form,says", [
    ({"channels": "stereo"}, "channels must be one of mix, separate"),
    ({"channel_names": "agent,customer"}, "channel_names need channels=separate"),
    ({"channels": "separate", "channel_names": ",".join("abcdefghi")}, "at most 8 channels"),
    ({"channels": "separate", "channel_names": "agent,,customer"}, "1 to 64 printable characters"),
    ({"channels": "separate", "channel_names": "x" * 65}, "1 to 64 printable characters"),
    ({"channels": "separate", "diarize": "true"}, "does not go with diarize"),
    ({"channels": "separate", "num_speakers": "2"}, "does not go with diarize"),
])
def test_bad_channel_fields_are_refused_and_no_job_is_made(client, app, stereo_call, form, says):
    r = _upload(client, stereo_call, **form)
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_channels", r.json
    assert says in r.json["error"]["message"]
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.query(Job).count() == 0


def _done_job(client, app, stereo_call, data=CALL) -> str:
    job_id = _upload(client, stereo_call, channels="separate", channel_names="agent,customer").json["id"]
    with session_scope(app.extensions["tingxie"].db) as s:
        jobs.complete(s, job_id, jobs.claim(s, job_id), data)
    return job_id


def test_every_export_labels_each_sentence_with_its_channels_name(client, app, stereo_call):
    url = f"/api/v1/jobs/{_done_job(client, app, stereo_call)}"
    data = client.get(url + "/transcript").json
    assert [(s["channel"], s["speaker"]) for s in data["segments"]] == [(1, "C1"), (0, "C0")]
    srt = client.get(url + "/transcript?format=srt").data.decode()
    assert srt.startswith("1\n00:00:00,500 --> ") and "[customer] 你好。" in srt and "[agent] Hello, how can I help?" in srt
    assert srt.index("[customer]") < srt.index("[agent]")
    txt = client.get(url + "/transcript?format=txt").data.decode()
    assert txt.splitlines() == ["[customer] 你好。", "[agent] Hello, how can I help?"]
    vtt = client.get(url + "/transcript?format=vtt").data.decode()
    assert "<v customer>你好。" in vtt and "<v agent>Hello, how can I help?" in vtt
    # Channels are renamed as speakers are.
    r = client.put(url + "/speakers", json={"names": {"C0": "Agent Wu", "C1": None}})
    assert r.status_code == 200 and r.json["speakers"] == [{"id": "C0", "name": "Agent Wu"}, {"id": "C1", "name": None}]
    txt = client.get(url + "/transcript?format=txt").data.decode()
    assert txt.splitlines() == ["[C1] 你好。", "[Agent Wu] Hello, how can I help?"]


def test_the_gateway_frame_gives_each_sentence_its_channel_as_spk():
    frame = result_frame(FileRequest(mode="offline", wav_name="call"), Transcript.from_dict(CALL))
    assert [s["spk"] for s in frame["stamp_sents"]] == [1, 0]


def test_openai_extra_fields_reach_the_job(settings, stereo_call):
    """No worker: the call answers 504 after a short wait, naming the job, whose options are stored."""
    from core.migrate import upgrade
    from web import create_app

    settings = dataclasses.replace(settings, openai_wait_s=0.1)
    upgrade(settings)
    client = create_app(settings).test_client()

    def post(**fields):
        return client.post("/v1/audio/transcriptions", content_type="multipart/form-data", data={
            "file": (io.BytesIO(stereo_call.read_bytes()), "call.wav"), "model": "whisper-1", **fields})

    r = post(channels="separate", channel_names="agent,customer", response_format="verbose_json")
    assert r.status_code == 504, r.json
    options = client.get(f"/api/v1/jobs/{r.json['error']['job_id']}").json["options"]
    assert options["channels"] == "separate" and options["channel_names"] == ["agent", "customer"]
    bad = post(channels="both")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_channels"
    assert json.dumps(bad.json)
