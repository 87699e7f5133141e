"""Character-level tasks: deterministic generation and answers that are right by construction,
checked here by independent rules on real UDHR words (Latin, Cyrillic, Devanagari, Thai, Han)."""

import collections
import unicodedata

import pytest
import regex

from aunet_lab.data.samples import udhr_articles
from aunet_lab.eval.chars import TASKS, generate, held_out_words

LANGS = ["en", "ru", "hi", "th", "zh"]


@pytest.fixture(scope="module")
def items():
    return {lang: generate(held_out_words(udhr_articles(lang)[-5:]), lang, per_task=20, seed=0) for lang in LANGS}


def graphemes(s):
    return regex.findall(r"\X", s)


def test_generation_is_deterministic_and_seeded(items):
    words = held_out_words(udhr_articles("en")[-5:])
    assert generate(words, "en", per_task=20, seed=0) == items["en"]
    assert generate(words, "en", per_task=20, seed=1) != items["en"]
    counts = collections.Counter(i.task for i in items["en"])
    assert set(counts) == set(TASKS) and all(n == 20 for n in counts.values())


def test_answers_are_right(items):
    for lang, its in items.items():
        for it in its:
            assert it.candidates[0] == it.answer and len(set(it.candidates)) == len(it.candidates) >= 2, it
            ans = it.answer[1:]
            word = regex.search(r'"([^"]+)"', it.prompt)
            if it.task == "spell":
                w = it.prompt.split(": ", 1)[1].split("\n")[0]
                assert ans.split(" ") == graphemes(w) and ans.replace(" ", "") == w
            elif it.task == "spell_inverse":
                assert graphemes(ans) == it.prompt.split(": ", 1)[1].split("\n")[0].split(" ")
            elif it.task == "contains_char":
                w, c = regex.findall(r'"([^"]+)"', it.prompt)
                assert ans == ("yes" if c in graphemes(w) else "no")
            elif it.task == "reverse":
                assert graphemes(ans) == graphemes(word.group(1))[::-1]
            elif it.task == "delete_char":
                c, w = regex.findall(r'"([^"]+)"', it.prompt)
                assert c not in graphemes(ans) and len(graphemes(ans)) == len(graphemes(w)) - graphemes(w).count(c)
            elif it.task == "substitute_char":
                c, new, w = regex.findall(r'"([^"]+)"', it.prompt)
                assert graphemes(ans) == [new if x == c else x for x in graphemes(w)]
            elif it.task == "insert_char":
                c, after, w = regex.findall(r'"([^"]+)"', it.prompt)
                g = graphemes(ans)
                assert len(g) == len(graphemes(w)) + graphemes(w).count(after)
                assert "".join(x for k, x in enumerate(g) if not (x == c and k and g[k - 1] == after)) == w
            elif it.task == "swap_chars":
                i, j = (int(n) - 1 for n in regex.findall(r"character (\d+)", it.prompt))
                w = word.group(1)
                g, h = graphemes(w), graphemes(ans)
                assert h[i] == g[j] and h[j] == g[i] and sorted(g) == sorted(h)
            elif it.task == "swap_words":
                a, b = regex.findall(r'"([^"]+)"', it.prompt)[:2]
                sentence = it.prompt.split("in: ", 1)[1].split("\n")[0].split(" ")
                out = ans.split(" ")
                assert sorted(out) == sorted(sentence) and out.index(a) == sentence.index(b)
            elif it.task == "substitute_words":
                a, new = regex.findall(r'"([^"]+)"', it.prompt)[:2]
                sentence = it.prompt.split("in: ", 1)[1].split("\n")[0].split(" ")
                assert ans.split(" ") == [new if x == a else x for x in sentence]


def test_combining_marks_stay_with_their_letter(items):
    for lang in ("hi", "th"):
        for it in items[lang]:
            if it.task in ("reverse", "spell"):
                for g in graphemes(it.answer.strip()):
                    if g != " ":
                        assert unicodedata.category(g[0])[0] != "M", (lang, it.answer)
