"""Joining words, and wetext ITN."""
from __future__ import annotations

import pytest

from pipeline.itn import WetextItn
from pipeline.stages import ItnModel
from pipeline.text import join_words


def test_join_words_spaces_only_between_latin_words():
    assert join_words(["And", "so,", "my", "fellow"]) == "And so, my fellow"
    assert join_words(["欢迎", "大家", "。"]) == "欢迎大家。"
    assert join_words(["使用", "ComfyUI", "的", "节点"]) == "使用ComfyUI的节点"
    assert join_words(["hello", "world", "!"]) == "hello world!"


@pytest.fixture(scope="module")
def itn():
    return WetextItn()


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
