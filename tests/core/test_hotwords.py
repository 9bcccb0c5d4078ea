import pytest

from core.hotwords import HotwordError, check_cap, load_hotword_file, merge, parse_hotwords, to_text


def test_json_object_with_string_weights():
    assert parse_hotwords('{"阿里巴巴": 20, "通义实验室": "30"}') == [("阿里巴巴", 20.0), ("通义实验室", 30.0)]


def test_comma_joined_drops_weights():
    assert parse_hotwords("阿里巴巴,达摩院，通义、ComfyUI") == [("阿里巴巴", None), ("达摩院", None), ("通义", None), ("ComfyUI", None)]


def test_space_separated_words():
    assert parse_hotwords("ComfyUI tingxie") == [("ComfyUI", None), ("tingxie", None)]


def test_single_word_with_weight():
    assert parse_hotwords("达摩院 20") == [("达摩院", 20.0)]


def test_funasr_file_format_lines_with_phrases():
    text = "达摩院 20\nmachine learning 15\nComfyUI\n"
    assert parse_hotwords(text) == [("达摩院", 20.0), ("machine learning", 15.0), ("ComfyUI", None)]


def test_empty_and_none():
    assert parse_hotwords(None) == [] and parse_hotwords("  \n ") == []


@pytest.mark.parametrize("bad", ['{"a": "x"}', "[1, 2]", "{not json"])
def test_bad_json_is_a_clear_error(bad):
    with pytest.raises(HotwordError):
        parse_hotwords(bad)


def test_merge_job_wins_and_cap(tmp_path):
    path = tmp_path / "hotwords.txt"
    path.write_text("# server words\n达摩院 10\n阿里巴巴 5\n", encoding="utf-8")
    server = load_hotword_file(path)
    merged = merge(server, [("达摩院", 30.0), ("ComfyUI", None)])
    assert merged == [("达摩院", 30.0), ("阿里巴巴", 5.0), ("ComfyUI", None)]
    assert check_cap(merged, 3) == merged
    with pytest.raises(HotwordError, match="at most 2"):
        check_cap(merged, 2)
    assert parse_hotwords(to_text(merged)) == merged
