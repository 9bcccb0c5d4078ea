import json

import pytest

from core.hotwords import (
    MAX_HOTWORD_CHARS,
    MAX_HOTWORDS_BYTES,
    Hotword,
    HotwordError,
    check_caps,
    load_hotword_file,
    merge,
    parse_hotwords,
    to_text,
)


def H(text, weight=None):
    return Hotword(text, weight)


def test_json_object_with_string_weights():
    assert parse_hotwords('{"阿里巴巴": 20, "通义实验室": "30"}') == (H("阿里巴巴", 20.0), H("通义实验室", 30.0))


def test_comma_joined_drops_weights():
    assert parse_hotwords("阿里巴巴,达摩院，通义、ComfyUI") == (H("阿里巴巴"), H("达摩院"), H("通义"), H("ComfyUI"))


def test_space_separated_words():
    assert parse_hotwords("ComfyUI tingxie") == (H("ComfyUI"), H("tingxie"))


def test_single_word_with_weight():
    assert parse_hotwords("达摩院 20") == (H("达摩院", 20.0),)


def test_funasr_file_format_lines_with_phrases():
    text = "达摩院 20\nmachine learning 15\nComfyUI\n"
    assert parse_hotwords(text) == (H("达摩院", 20.0), H("machine learning", 15.0), H("ComfyUI"))


def test_empty_and_none():
    assert parse_hotwords(None) == () and parse_hotwords("  \n ") == ()


@pytest.mark.parametrize("bad", ['{"a": "x"}', "[1, 2]", "{not json", '{"a": true}'])
def test_bad_json_is_a_clear_error(bad):
    with pytest.raises(HotwordError):
        parse_hotwords(bad)


@pytest.mark.parametrize("text", ["hello nan", "hello inf", "hello -inf", "hello -3", "hello 0", "hello 1e9",
                                  '{"hello": "NaN"}', '{"hello": 1e400}', "a 5\nhello NaN"])
def test_weights_must_be_finite_and_sensible(text):
    with pytest.raises(HotwordError, match="weight"):
        parse_hotwords(text)


def test_accepted_weights_serialise_as_valid_json():
    words = parse_hotwords("a 0.5\nb 100\nc")
    json.loads(json.dumps([h.to_json() for h in words], allow_nan=False))


def test_a_hotword_and_the_whole_list_have_caps():
    with pytest.raises(HotwordError, match="characters"):
        parse_hotwords("x" * (MAX_HOTWORD_CHARS + 1))
    with pytest.raises(HotwordError, match="bytes"):
        parse_hotwords("达摩院 " * (MAX_HOTWORDS_BYTES // 3))
    with pytest.raises(HotwordError, match="control"):
        Hotword("bad\x00word")


def test_merge_job_wins_and_caps(tmp_path):
    path = tmp_path / "hotwords.txt"
    path.write_text("# server words\n达摩院 10\n阿里巴巴 5\n", encoding="utf-8")
    server = load_hotword_file(path)
    merged = merge(server, (H("达摩院", 30.0), H("ComfyUI")))
    assert merged == (H("达摩院", 30.0), H("阿里巴巴", 5.0), H("ComfyUI"))
    assert check_caps(merged, 3) == merged
    with pytest.raises(HotwordError, match="at most 2"):
        check_caps(merged, 2)
    assert parse_hotwords(to_text(merged)) == merged
