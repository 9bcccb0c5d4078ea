"""Joining words, and wetext ITN."""
from __future__ import annotations

import pytest

from pipeline.stages import ItnModel
from pipeline.text import as_written, join_words, to_traditional


def test_join_words_spaces_only_between_latin_words():
    assert join_words(["And", "so,", "my", "fellow"]) == "And so, my fellow"
    assert join_words(["欢迎", "大家", "。"]) == "欢迎大家。"
    assert join_words(["使用", "ComfyUI", "的", "节点"]) == "使用ComfyUI的节点"
    assert join_words(["hello", "world", "!"]) == "hello world!"



def test_itn_differs_from_spoken_form(itn):
    assert isinstance(itn, ItnModel)
    assert itn.normalize("我有一百二十三个苹果", language="zh") == "我有123个苹果"
    assert itn.normalize("I have twenty three apples.", language="en") == "I have 23 apples."


def test_itn_leaves_words_alone(itn):
    for text, language in [
        ("我们一起去吧，统一思想，一些人", "zh"),
        ("Then you go into your ComfyUI folder", "en"),
        ("no one can do it, once upon a time", "en"),
        ("欢迎大家来体验达摩院推出的语音识别模型。", "zh"),
    ]:
        assert itn.normalize(text, language=language) == text
    assert itn.normalize("I have twenty three apples", language="fr") == "I have twenty three apples"


def test_no_space_between_a_number_and_its_unit():
    """Whisper writes "50%" as the tokens "50" "%": joined, they are one "50%" (issue 25)."""
    assert join_words(["增长", "了", "50", "%"]) == "增长了50%"
    assert join_words(["it", "grew", "50", "%"]) == "it grew 50%"
    for spoken, written in [("增长50 %", "增长50%"), ("气温25 ℃", "气温25℃"), ("花了300 元", "花了300元"),
                            ("共3 万人", "共3万人"), ("5 亿", "5亿"), ("It grew 50 %.", "It grew 50%.")]:
        assert as_written(spoken, "zh" if "It" not in spoken else "en") == written


@pytest.mark.parametrize("spoken, written", [
    ("增长了百分之五十", "增长了50%"),
    ("今天气温二十五摄氏度", "今天气温25℃"),
    ("花了三百元", "花了300元"),
    ("五十亿元", "50亿元"),
    ("价格是五十元,对吧?", "价格是50元，对吧？"),
    ("他说:今天很好!", "他说：今天很好！"),
    ("百分之五十的人说OK,我们走吧.", "50%的人说OK，我们走吧。"),
])
def test_chinese_after_itn_is_written_as_people_write_it(itn, spoken, written):
    assert as_written(itn.normalize(spoken, language="zh"), "zh") == written


@pytest.mark.parametrize("text, language, written", [
    ("我用ComfyUI,很好用.", "zh", "我用ComfyUI，很好用。"),
    ("I love you。", "en", "I love you."),
    ("Hello，world。", "en", "Hello, world."),
    ("OK, let's go.", "en", "OK, let's go."),
    ("我喜欢这句话: I love you, and you love me.", "zh", "我喜欢这句话：I love you, and you love me."),
    ("你好， world，hi。", "zh", "你好，world，hi。"),
    ("真的吗?!", "zh", "真的吗？！"),
    ("价格是3.5元,共1,000个,10:30开始.", "zh", "价格是3.5元，共1,000个，10:30开始。"),
    ("欢迎大家来体验达摩院推出的语音识别模型。", "zh", "欢迎大家来体验达摩院推出的语音识别模型。"),
])
def test_full_width_marks_in_chinese_half_width_in_english(text, language, written):
    assert as_written(text, language) == written


def test_traditional_characters_only_when_asked():
    assert to_traditional("欢迎大家来体验达摩院推出的语音识别模型", "zh-hant") == "歡迎大家來體驗達摩院推出的語音識別模型"
    assert to_traditional("软件", "zh-tw") == "軟件"
    assert to_traditional("欢迎", "zh") == "欢迎"
