"""Hypothesis strategies for split-function tests: text in many scripts, and arbitrary bytes."""

from hypothesis import strategies as st

PIECES = [
    "word", "the", "Wörter", "é", "слово", "λέξη", "मनुष्यों", "कि", "ภาษาไทย", "ที่", "中文字", "かな",
    "カタカナ", "한국어", "مرحبًا", "שָׁלוֹם", "1", "23", "4567", "½", ".", "...", "?!", ",", "—", "(", ")",
    "\"", "’", "#", " ", " ", " ", "  ", "\t", "\n", "\n\n", " \n", "\r\n", "\u00a0", "\u3000", "\u0301",
    "\u0e34", "\u093f", "\x00", "\x85", "\u2028",
]
BAD = [b"\xff", b"\xc3", b"\xe4\xb8", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\x80", b"\xc0\xaf"]

multiscript_text = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)

any_bytes = st.one_of(
    st.binary(max_size=60),
    multiscript_text.map(lambda t: t.encode()),
    st.lists(
        st.one_of(st.sampled_from(PIECES).map(str.encode), st.sampled_from(BAD)), max_size=30
    ).map(b"".join),
)

LATIN_WORDS = ["the", "cat", "sat", "on", "a", "mat", "Über", "café", "naïve", "dollars", "It", "x"]
LATIN_OTHER = [" ", " ", " ", " ", "  ", "\t", "\n", "\n\n", " \n", "\t\n ", "\r\n", ".", ",", "...", "?!",
               "'", "(", ")", "-", "1", "42", "12345", "3.14"]
latin_text = st.lists(
    st.one_of(st.sampled_from(LATIN_WORDS), st.sampled_from(LATIN_OTHER)), max_size=40
).map("".join)
