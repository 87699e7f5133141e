"""Character-level tasks in the style of the CUTE benchmark, generated deterministically from
held-out words of a language: spell, spell inverse, contains-char, insert, delete, substitute, swap
and reverse a word, and swap or substitute words in a short sentence. Each item has a prompt, the
correct answer and distractors (for log-likelihood ranking); the templates are the project's own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import regex

TASKS = ("spell", "spell_inverse", "contains_char", "insert_char", "delete_char", "substitute_char", "swap_chars",
         "reverse", "swap_words", "substitute_words")
_WORD = regex.compile(r"\p{L}[\p{L}\p{M}]*")


@dataclass(frozen=True)
class Item:
    task: str
    language: str
    prompt: str
    answer: str
    candidates: tuple[str, ...] = field(default_factory=tuple)  # the answer first, then distractors


def held_out_words(texts: list[str], min_len: int = 3, max_len: int = 12) -> list[str]:
    """Distinct words (letters and their combining marks) of the given length in characters, in
    order of first appearance."""
    seen, out = set(), []
    for text in texts:
        for w in _WORD.findall(text):
            if min_len <= len(w) <= max_len and w not in seen:
                seen.add(w)
                out.append(w)
    return out


def _graphemes(word: str) -> list[str]:
    """User-perceived characters (a letter with its combining marks stays one unit: Hindi, Thai)."""
    return regex.findall(r"\X", word)


def _spell(word: str) -> str:
    return " ".join(_graphemes(word))


def _other(rng: random.Random, pool: list[str], not_in: str) -> str:
    options = [c for c in pool if c not in not_in]
    return rng.choice(options) if options else rng.choice(pool)


def _distractors(answer: str, rng: random.Random, make, count: int = 3) -> tuple[str, ...]:
    out = []
    for _ in range(50):
        d = make()
        if d != answer and d not in out:
            out.append(d)
        if len(out) == count:
            break
    return (answer, *out)


def _item(task: str, lang: str, word: str, words: list[str], rng: random.Random) -> Item | None:
    g = _graphemes(word)
    if len(g) < 3:
        return None
    alphabet = sorted({c for w in words[:500] for c in _graphemes(w)})

    def shuffled() -> str:
        h = g[:]
        rng.shuffle(h)
        return "".join(h)

    def mutate() -> str:
        h = g[:]
        h[rng.randrange(len(h))] = rng.choice(alphabet)
        return "".join(h)

    if task == "spell":
        answer = _spell(word)
        return Item(task, lang, f"Spell the word, one character at a time: {word}\nSpelling:", " " + answer,
                    tuple(" " + c for c in _distractors(answer, rng, lambda: _spell(mutate()))))
    if task == "spell_inverse":
        return Item(task, lang, f"Join these characters into a word: {_spell(word)}\nWord:", " " + word,
                    tuple(" " + c for c in _distractors(word, rng, mutate)))
    if task == "contains_char":
        present = rng.random() < 0.5
        c = rng.choice(g) if present else _other(rng, alphabet, word)
        answer = "yes" if c in g else "no"
        return Item(task, lang, f"Does the word \"{word}\" contain the character \"{c}\"? Answer yes or no:",
                    " " + answer, (" " + answer, " " + ("no" if answer == "yes" else "yes")))
    if task == "insert_char":
        after, c = rng.choice(g), _other(rng, alphabet, word)
        answer = "".join(x + (c if x == after else "") for x in g)
        return Item(task, lang, f"Add \"{c}\" after every \"{after}\" in \"{word}\".\nResult:", " " + answer,
                    tuple(" " + x for x in _distractors(answer, rng, lambda: "".join(
                        x + (c if x == rng.choice(g) else "") for x in g) if rng.random() < 0.5 else c + word)))
    if task == "delete_char":
        c = rng.choice(g)
        answer = "".join(x for x in g if x != c)
        return Item(task, lang, f"Remove every \"{c}\" from \"{word}\".\nResult:", " " + answer,
                    tuple(" " + x for x in _distractors(answer, rng, lambda: "".join(
                        x for x in g if x != rng.choice(g)) if rng.random() < 0.7 else word)))
    if task == "substitute_char":
        c, new = rng.choice(g), _other(rng, alphabet, word)
        answer = "".join(new if x == c else x for x in g)
        return Item(task, lang, f"Replace every \"{c}\" with \"{new}\" in \"{word}\".\nResult:", " " + answer,
                    tuple(" " + x for x in _distractors(answer, rng, mutate)))
    if task == "swap_chars":
        i, j = sorted(rng.sample(range(len(g)), 2))
        h = g[:]
        h[i], h[j] = h[j], h[i]
        answer = "".join(h)
        if answer == word:
            return None
        return Item(task, lang, f"Swap character {i + 1} and character {j + 1} of \"{word}\".\nResult:", " " + answer,
                    tuple(" " + x for x in _distractors(answer, rng, shuffled)))
    if task == "reverse":
        answer = "".join(reversed(g))
        if answer == word:
            return None
        return Item(task, lang, f"Write \"{word}\" backwards.\nResult:", " " + answer,
                    tuple(" " + x for x in _distractors(answer, rng, shuffled)))
    others = [w for w in rng.sample(words, min(len(words), 8)) if w != word][:3]
    if len(others) < 3:
        return None
    sentence = [word, *others]
    rng.shuffle(sentence)
    text = " ".join(sentence)
    a, b = rng.sample(sentence, 2)
    if task == "swap_words":
        ia, ib = sentence.index(a), sentence.index(b)
        swapped = sentence[:]
        swapped[ia], swapped[ib] = swapped[ib], swapped[ia]
        answer = " ".join(swapped)

        def wrong() -> str:
            s = sentence[:]
            rng.shuffle(s)
            return " ".join(s)

        return Item(task, lang, f"Swap the words \"{a}\" and \"{b}\" in: {text}\nResult:", " " + answer,
                    tuple(" " + x for x in _distractors(answer, rng, wrong)))
    if task == "substitute_words":
        new = _other(rng, [w for w in words[:200] if w not in sentence] or words, "")
        answer = " ".join(new if w == a else w for w in sentence)

        def wrong() -> str:
            victim = rng.choice(sentence)
            return " ".join(new if w == victim else w for w in sentence) if victim != a else text

        return Item(task, lang, f"Replace the word \"{a}\" with \"{new}\" in: {text}\nResult:", " " + answer,
                    tuple(" " + x for x in _distractors(answer, rng, wrong)))
    raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")


def generate(words: list[str], language: str, tasks: tuple[str, ...] = TASKS, per_task: int = 50,
             seed: int = 0) -> list[Item]:
    """``per_task`` items of each task from ``words`` (held-out words of ``language``); the same
    inputs and seed give the same items."""
    out = []
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
        rng = random.Random(f"{seed}:{language}:{task}")
        pool = words[:]
        rng.shuffle(pool)
        made = 0
        for word in pool:
            if made == per_task:
                break
            item = _item(task, language, word, words, rng)
            if item is not None:
                out.append(item)
                made += 1
    return out
