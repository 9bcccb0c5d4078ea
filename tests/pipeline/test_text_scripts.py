"""join_words for scripts written without spaces beyond Chinese and Japanese: Thai, Lao, Burmese
(Whisper cuts them into pieces at token boundaries, as it cuts Chinese)."""
from pipeline.text import is_unspaced, join_words


def test_thai_lao_and_burmese_pieces_join_without_spaces():
    assert join_words(["สวัส", "ดี", "ครับ"]) == "สวัสดีครับ"
    assert join_words(["ສະບາຍ", "ດີ"]) == "ສະບາຍດີ"
    assert join_words(["မင်္ဂလာ", "ပါ"]) == "မင်္ဂလာပါ"


def test_next_to_latin_they_keep_their_spaces():
    assert join_words(["ใช้", "ComfyUI", "ครับ"]) == "ใช้ ComfyUI ครับ"
    assert join_words(["hello", "world"]) == "hello world"
    assert join_words(["使用", "ComfyUI"]) == "使用ComfyUI"


def test_which_characters():
    assert is_unspaced("ก") and is_unspaced("ລ") and is_unspaced("က")
    assert not is_unspaced("a") and not is_unspaced("中") and not is_unspaced("한")
