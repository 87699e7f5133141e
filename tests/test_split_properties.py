"""Properties every built-in split function must have, on arbitrary bytes."""

import pytest
import torch
from hypothesis import given

from aunet_lab.data.splitting import byte_levels, check_stability, get_split_function, level_mask, list_split_functions
from hypothesis import strategies as st

from strategies import any_bytes, multiscript_text

BUILT_INS = list_split_functions()
# Parameterised variants exercise the argument parsing paths too.
SPECS = BUILT_INS + ["word:1,2", "stride:3,7,20", "script:3,3,2"]


def test_built_ins_are_registered():
    assert {"word", "script", "stride"} <= set(BUILT_INS)


@pytest.mark.parametrize("spec", SPECS)
@given(data=any_bytes)
def test_stable_to_rightward_insertion_at_byte_granularity(spec, data):
    full = byte_levels(data, spec)
    assert full.shape == (len(data),)
    for cut in range(len(data)):
        prefix = byte_levels(data[:cut], spec)
        assert torch.equal(prefix, full[:cut]), (spec, data, cut)


@pytest.mark.parametrize("spec", SPECS)
@given(data=any_bytes)
def test_levels_nested_in_range_and_bos_at_every_level(spec, data):
    split = get_split_function(spec)
    mask = level_mask(data, spec)
    assert mask.dtype == torch.long and mask.shape == (len(data) + 1,)
    assert int(mask[0]) == split.max_level
    assert int(mask.min()) >= 0 and int(mask.max()) <= split.max_level
    # Nested stages: every stage-(k+1) boundary is a stage-k boundary.
    for k in range(1, split.max_level):
        deeper = mask >= k + 1
        assert bool((mask[deeper] >= k).all())
        assert int(deeper.sum()) <= int((mask >= k).sum())
    assert torch.equal(level_mask(data, spec, bos=False), mask[1:])


@pytest.mark.parametrize("spec", SPECS)
@given(data=any_bytes)
def test_never_a_boundary_inside_incomplete_or_invalid_utf8(spec, data):
    levels = byte_levels(data, spec)
    for i in torch.nonzero(levels).flatten().tolist():
        # Independent oracle: the prefix ending at byte i must end with a complete, valid character.
        last = data[: i + 1].decode("utf-8", "surrogateescape")[-1]
        assert not 0xDC80 <= ord(last) <= 0xDCFF, (spec, data, i)


@pytest.mark.parametrize("spec", SPECS)
def test_text_and_bytes_agree_and_empty_input(spec):
    text = "Tous les êtres humains naissent libres. 人人生而自由。\n"
    assert torch.equal(level_mask(text, spec), level_mask(text.encode(), spec))
    assert level_mask(b"", spec).tolist() == [get_split_function(spec).max_level]
    assert byte_levels(b"\x00\x00\xff", spec).shape == (3,)


@pytest.mark.parametrize("spec", SPECS)
def test_stable_on_the_checker_corpus(spec):
    # Deterministic complement to the random search: samples in 13 languages, edge cases, and
    # generated mixtures, every prefix checked at byte granularity.
    report = check_stability(spec, max_bytes=200)
    assert report.stable, report.summary()


def test_stride_keeps_its_rule_when_a_multibyte_character_arrives():
    # Regression: an ASCII fast path once counted non-nested strides differently.
    ascii_part = b"abcdefghijklmn"
    for spec in ("stride:3,7", "stride:4,8"):
        assert torch.equal(byte_levels(ascii_part + "é".encode(), spec)[: len(ascii_part)],
                           byte_levels(ascii_part, spec))


@given(text=multiscript_text)
def test_vectorised_start_rule_equals_the_regex(text):
    from aunet_lab.data.splitting import _classes, _codepoints, _doc_flags, _start_boundaries, _start_boundary_mask

    mask = _start_boundary_mask(_classes(_codepoints(text)), _doc_flags(len(text), [0, len(text)]))
    assert torch.nonzero(mask).flatten().tolist() == _start_boundaries(text)


@pytest.mark.parametrize("spec", SPECS)
@given(docs=st.lists(any_bytes, max_size=6))
def test_batched_levels_equal_one_document_at_a_time(spec, docs):
    from aunet_lab.data.splitting import byte_levels_batch

    levels, offsets = byte_levels_batch(docs, spec)
    assert offsets[-1] == sum(len(d) for d in docs) == levels.numel()
    for i, d in enumerate(docs):
        assert torch.equal(levels[offsets[i] : offsets[i + 1]], byte_levels(d, spec))
