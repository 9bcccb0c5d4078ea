from contract import Transcript
from core.export import render

DATA = Transcript.from_dict({
    "text": "Hello world. 你好。",
    "language": "en",
    "duration_ms": 3_725_500,
    "segments": [
        {"start_ms": 0, "end_ms": 1500, "text": "Hello world.", "words": [
            {"start_ms": 0, "end_ms": 700, "text": "Hello"}, {"start_ms": 700, "end_ms": 1500, "text": "world."}]},
        {"start_ms": 3_723_004, "end_ms": 3_725_500, "text": "你好。", "words": []},
    ],
})


def test_srt_cues():
    assert render(DATA, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello world.\n\n"
        "2\n01:02:03,004 --> 01:02:05,500\n你好。\n"
    )


def test_vtt_cues():
    out = render(DATA, "vtt")
    assert out.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello world.\n")
    assert "01:02:03.004 --> 01:02:05.500\n你好。" in out


def test_txt_and_json():
    assert render(DATA, "txt") == "Hello world.\n你好。\n"
    assert '"你好。"' in render(DATA, "json")
