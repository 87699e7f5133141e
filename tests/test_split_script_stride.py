"""The script-aware and fixed-stride split functions."""

import torch
from hypothesis import given

from aunet_lab.data.samples import sample_texts
from aunet_lab.data.splitting import byte_levels, units_by_stage, units_per_byte
from aunet_lab.demo import SCRIPT_BOUND, script_bound_rows
from strategies import latin_text


def test_script_aware_bytes_per_unit_within_2x_of_english():
    rows = script_bound_rows(sample_texts())
    assert [lang for lang, *_ in rows] == ["zh", "ja", "th"]
    for lang, bytes_per_unit, ratio in rows:
        assert 1 / SCRIPT_BOUND <= ratio <= SCRIPT_BOUND, (lang, bytes_per_unit, ratio)


def test_word_alone_fails_that_bound_on_chinese_and_japanese():
    texts = sample_texts()
    english = 1 / units_per_byte(byte_levels(texts["en"], "word"), 3)[0]
    for lang in ("zh", "ja"):
        per_unit = 1 / units_per_byte(byte_levels(texts[lang], "word"), 3)[0]
        assert per_unit > SCRIPT_BOUND * english, lang


@given(text=latin_text)
def test_script_aware_equals_word_on_latin_text(text):
    assert torch.equal(byte_levels(text, "script"), byte_levels(text, "word"))


def test_script_aware_on_all_latin_and_cyrillic_samples_equals_word():
    texts = sample_texts()
    for lang in ("en", "fr", "de", "es", "ru", "el", "hi", "ar", "he"):
        assert torch.equal(byte_levels(texts[lang], "script"), byte_levels(texts[lang], "word")), lang


def test_script_aware_chinese_units():
    units = [u.decode() for u in units_by_stage("人人生而自由，在尊严", "script")[0]]
    assert units == ["人人", "生而", "自由", "，", "在尊", "严"]


def test_stride_is_byte_slicing_on_ascii():
    text = b"abcdefghijklmnopqrstuvwxyz0123456789"
    levels = byte_levels(text, "stride:4")
    assert torch.nonzero(levels).flatten().tolist() == list(range(3, len(text), 4))
    levels = byte_levels(text, "stride:4,12")
    assert torch.nonzero(levels == 2).flatten().tolist() == [11, 23, 35]
    assert torch.nonzero(levels == 1).flatten().tolist() == [3, 7, 15, 19, 27, 31]


def test_stride_waits_for_the_end_of_a_multibyte_character():
    text = "ab中cd".encode()  # 中 occupies bytes 2..4
    levels = byte_levels(text, "stride:4")
    assert torch.nonzero(levels).flatten().tolist() == [4]
