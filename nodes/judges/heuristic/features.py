"""Text features shared by the guards, the injection detector and the heuristic scorers.

Pure functions of a text (and the lexicons): sentences, tokens, content words, canonical
technical terms (English and Korean variants of one concept count the same), figures,
concrete-example markers, generic filler, and the shape of the text (real sentences or a
list of terms). No embedding and no state: the same text always gives the same features.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TypeAlias

from nodes.judges.lexicons import load

HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9+#./'-]*|[\uac00-\ud7a3]+", re.IGNORECASE)
# Not after a one-letter abbreviation ("e.g. ", "P.S. "): those do not end a sentence.
_SENTENCE_END = re.compile(r"(?<![.\s][A-Za-z]\.)(?<=[.!?。])\s+|\n+")
_LIST_SEPARATORS = re.compile(r"[,;/|·•\n]+|\s-\s|\s+(?:and|및|그리고)\s+")
HANGUL_CHARS_PER_WORD = 2.5


def detect_language(text: str, fallback: str = "en") -> str:
    """'ko' when Hangul dominates the letters of `text`, 'en' when Latin does.

    Args:
        text: Any text, possibly mixed.
        fallback: The language returned when `text` has no letters (e.g. the session's).

    Returns:
        "ko" or "en" (a fallback other than "ko" maps to "en").
    """
    hangul = len(HANGUL.findall(text))
    latin = len(_LATIN.findall(text))
    if hangul == 0 and latin == 0:
        return normalise_language(fallback)
    # A Hangul syllable carries about as much as 2-3 Latin letters.
    return "ko" if hangul * 2.5 >= latin else "en"


def normalise_language(language: str | None) -> str:
    """'ko' for any Korean tag ("ko", "ko-KR", "kor"), else 'en'."""
    return "ko" if (language or "").strip().lower().startswith("ko") else "en"


def word_equivalents(text: str) -> float:
    """Length in English-word equivalents: Latin/digit tokens + Hangul syllables / 2.5."""
    total = 0.0
    for token in _WORD.findall(text):
        hangul = len(HANGUL.findall(token))
        total += hangul / HANGUL_CHARS_PER_WORD
        if hangul < len(token):
            total += 1.0
    return total


def sentences(text: str) -> list[str]:
    """The sentences of `text` (split at sentence ends and line breaks), stripped, non-empty."""
    parts = _SENTENCE_END.split(text)
    return [p.strip() for p in parts if p and p.strip()]


def tokens(text: str) -> list[str]:
    """Lowercase word tokens (Latin words with +#./'- inside, or runs of Hangul)."""
    return [t.lower().strip(".'-") for t in _TOKEN.findall(text) if t.strip(".'-")]


@cache
def _stopwords() -> tuple[frozenset[str], tuple[str, ...]]:
    lexicon = load("guards")["stopwords"]
    return frozenset(lexicon["en"]), tuple(lexicon["ko_stems"])


@cache
def _filler_words() -> tuple[frozenset[str], tuple[str, ...]]:
    lexicon = load("guards")["filler_words"]
    return frozenset(lexicon["en"]), tuple(lexicon["ko"])


def content_units(text: str) -> list[str]:
    """Content keywords of a text: 5-letter English prefixes, 2-syllable Korean stems.

    Stopwords, question scaffolding ("describe", "말씀") and filler are left out; the
    prefixes make "indexes"/"indexing" and "트랜잭션을"/"트랜잭션이" the same unit.
    """
    en_stop, ko_stop = _stopwords()
    en_filler, _ = _filler_words()
    units: list[str] = []
    for token in tokens(text):
        if HANGUL.match(token):
            if len(token) >= 2 and token[:2] not in ko_stop:
                units.append(token[:2])
        elif (
            (len(token) >= 3 or any(c.isdigit() for c in token))
            and token not in en_stop
            and token not in en_filler
        ):
            units.append(token[:5])
    return units


@dataclass(frozen=True)
class TermGroup:
    """One concept of the term map with its English and Korean variants."""

    id: str
    variants: tuple[str, ...]


@cache
def term_groups() -> tuple[TermGroup, ...]:
    """The English <-> Korean term map (lexicons/terms.json)."""
    return tuple(
        TermGroup(id=g["id"], variants=tuple(v.lower() for v in [*g["en"], *g["ko"]]))
        for g in load("terms")["groups"]
    )


@lru_cache(maxsize=8192)
def _word_pattern(needle: str, *, prefix: bool = False) -> re.Pattern[str]:
    """A compiled whole-word (or word-prefix) pattern for `needle`.

    The lexicons hold more phrases than `re`'s own cache (512 patterns), so without this every
    turn recompiled hundreds of them: most of the heuristic judge's time per turn.
    """
    end = "" if prefix else r"(?![a-z0-9])"
    return re.compile(r"(?<![a-z0-9])" + re.escape(needle) + end)


def _contains(lowered: str, needle: str) -> bool:
    """Whole-word match for Latin needles, substring match for Korean ones.

    The substring test comes first: a needle absent from the text (nearly every one of the
    hundreds of lexicon phrases tried per text) is ruled out without a regex search.
    """
    if needle not in lowered:
        return False
    return bool(HANGUL.search(needle)) or _word_pattern(needle).search(lowered) is not None


def find_phrases(text: str, phrases: Iterable[str]) -> list[str]:
    """The phrases occurring in `text` (lowercased; a trailing * matches a word prefix)."""
    lowered = text.lower()
    found: list[str] = []
    for phrase in phrases:
        if phrase.endswith("*"):
            stem = phrase[:-1]
            if stem in lowered and _word_pattern(stem, prefix=True).search(lowered):
                found.append(stem)
        elif phrase and _contains(lowered, phrase):
            found.append(phrase)
    return found


#: What must follow a whole-word Latin phrase: no letter or digit.
_WORD_END = r"(?![a-z0-9])"
_Trie: TypeAlias = dict[str, "_Trie"]
#: The key of a trie node that marks where phrases end; its value's keys are their ends.
_ENDS = ""


def _add(trie: _Trie, text: str, end: str) -> None:
    node = trie
    for char in text:
        node = node.setdefault(char, {})
    node.setdefault(_ENDS, {})[end] = {}


def _render(node: _Trie) -> str:
    """The alternation of the strings below `node`, each with its end condition."""
    branches = [re.escape(char) + _render(child) for char, child in node.items() if char]
    ends = node.get(_ENDS)
    if ends is not None:  # a phrase ends here: unconditionally if any of them has no condition
        branches.append("" if "" in ends else _WORD_END)
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


@lru_cache(maxsize=256)
def _any_phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern matching where any phrase matches, with the boundaries `find_phrases` uses.

    It is the alternation of every phrase (a Latin phrase as a whole word, a word prefix for a
    trailing *, a Korean phrase anywhere) written as a trie: alternatives that share a prefix
    share one branch ("grade", "grader", "grading" -> ``grad(?:e(?:r|(?!...))|ing...)``) and
    each top-level branch starts with its literal first character, so the regex engine only
    tries the branches whose first character is at the current position (and skips positions
    where none is) instead of every phrase at every position, ~10x faster. The strings it
    matches at each position are exactly those of the flat alternation. The "not after a
    letter or digit" condition of a word is checked after its first character
    (``c(?<![a-z0-9]c)``), which is the same test.
    """
    words: dict[str, _Trie] = {}  # first character -> trie of the rest
    korean: dict[str, _Trie] = {}
    for phrase in phrases:
        if phrase.endswith("*"):
            text, end, tries = phrase[:-1], "", words
        elif not phrase:
            continue
        elif HANGUL.search(phrase):
            text, end, tries = phrase, "", korean
        else:
            text, end, tries = phrase, _WORD_END, words
        if not text:  # a bare "*" matches every text
            return re.compile("")
        _add(tries.setdefault(text[0], {}), text[1:], end)
    branches = [
        re.escape(first) + "(?<![a-z0-9]" + re.escape(first) + ")" + _render(rest)
        for first, rest in words.items()
    ]
    branches += [re.escape(first) + _render(rest) for first, rest in korean.items()]
    return re.compile("|".join(branches)) if branches else None


def has_phrase(text: str, phrases: tuple[str, ...]) -> bool:
    """`bool(find_phrases(text, phrases))` in one regex search instead of one per phrase.

    A search over an alternation matches exactly when one of its alternatives matches
    somewhere, so the answer is the same; the injection detector asks this question dozens
    of times per answer, over lexicons of dozens to hundreds of phrases.
    """
    pattern = _any_phrase_pattern(phrases)
    return pattern is not None and pattern.search(text.lower()) is not None


def canonical_terms(text: str) -> list[str]:
    """Ids of the term-map concepts mentioned in `text`, in either language, in map order."""
    lowered = text.lower()
    return [g.id for g in term_groups() if any(_contains(lowered, v) for v in g.variants)]


@cache
def _longest_first() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each term group's id and variants, longest variant first (sorted once, not per text)."""
    return tuple(
        (group.id, tuple(sorted(group.variants, key=len, reverse=True))) for group in term_groups()
    )


def units_with_terms(text: str) -> set[str]:
    """Content units plus canonical term ids (so 'cache' and '캐시' share a unit).

    Words that belong to a term-map concept count once, as the concept, in either language.
    The result is a new set each time (callers may change it); the work is cached per text:
    a submission asks for the same question's units a dozen times.
    """
    return set(_units_with_terms(text))


@lru_cache(maxsize=8192)
def _units_with_terms(text: str) -> frozenset[str]:
    lowered = text.lower()
    ids: list[str] = []
    for group_id, variants in _longest_first():
        hit = False
        for variant in variants:
            if _contains(lowered, variant):
                hit = True
                if HANGUL.search(variant):
                    lowered = lowered.replace(variant, " ")
                else:
                    lowered = _word_pattern(variant).sub(" ", lowered)
        if hit:
            ids.append(group_id)
    return frozenset(content_units(lowered)) | {"term:" + t for t in ids}


@cache
def _specificity() -> dict[str, object]:
    return load("specificity")


def _figure_pattern() -> re.Pattern[str]:
    units = sorted((str(u) for u in _specificity()["figure_units"]), key=len, reverse=True)  # type: ignore[attr-defined]
    alternation = "|".join(re.escape(u) for u in units)
    return re.compile(
        r"(?<![\w.])[$€£₩]?\d+(?:[.,]\d+)*(?:\s?(?:" + alternation + r")(?![a-z]))?",
        re.IGNORECASE,
    )


_FIGURE: re.Pattern[str] | None = None


def figures(text: str, exclude: Iterable[str] = ()) -> list[str]:
    """Distinct figures (numbers with an optional unit) whose digits are not in `exclude`."""
    global _FIGURE
    if _FIGURE is None:
        _FIGURE = _figure_pattern()
    excluded = set(exclude)
    seen: dict[str, None] = {}
    for match in _FIGURE.finditer(text):
        figure = re.sub(r"\s+", "", match.group(0).lower())
        digits = re.sub(r"[^\d.,]", "", figure)
        if digits and digits not in excluded:
            seen.setdefault(figure, None)
    return list(seen)


def figure_digits(text: str) -> set[str]:
    """The bare digits of every figure in `text` (to discount figures copied from a question)."""
    return {re.sub(r"[^\d.,]", "", f) for f in figures(text)}


def example_markers(text: str) -> list[str]:
    """Concrete-experience markers ("for example", "we cut", "이전 회사", "줄였") found."""
    lexicon = _specificity()["example_markers"]
    assert isinstance(lexicon, dict)
    return find_phrases(text, [*lexicon["en"], *lexicon["ko"]])


def filler(text: str) -> list[str]:
    """Generic phrases ("best practices", "최선을 다") found in `text`."""
    lexicon = _specificity()["filler"]
    assert isinstance(lexicon, dict)
    lowered = text.lower()
    return [p for p in [*lexicon["en"], *lexicon["ko"]] if p in lowered]


@dataclass(frozen=True)
class Shape:
    """How a text is built: real sentences, or items listed without sentences."""

    items: int
    mean_item_words: float
    function_ratio: float
    sentence_share: float
    tokens: int


@cache
def _function_words() -> tuple[frozenset[str], tuple[str, ...]]:
    lexicon = load("guards")["function_words"]
    return frozenset(lexicon["en"]), tuple(lexicon["ko_endings"])


def _is_sentence_like(part: str, en_function: frozenset[str], ko_endings: tuple[str, ...]) -> bool:
    """A clause: >= 4 tokens with a function word (en) or Korean grammatical endings."""
    toks = tokens(part)
    if len(toks) < 4:
        return False
    grammatical = sum(
        1
        for t in toks
        if t in en_function
        or (HANGUL.match(t) is not None and len(t) >= 2 and t.endswith(ko_endings))
    )
    return grammatical >= 2


def shape(text: str) -> Shape:
    """The shape of `text`: list items, their mean length, share of grammatical words."""
    en_function, ko_endings = _function_words()
    items = [p.strip() for p in _LIST_SEPARATORS.split(text) if p and p.strip()]
    toks = tokens(text)
    grammatical = sum(
        1
        for t in toks
        if t in en_function
        or (HANGUL.match(t) is not None and len(t) >= 2 and t.endswith(ko_endings))
    )
    sent = sentences(text)
    sentence_like = [s for s in sent if _is_sentence_like(s, en_function, ko_endings)]
    words_per_item = [len(tokens(i)) for i in items] or [0]
    return Shape(
        items=len(items),
        mean_item_words=sum(words_per_item) / len(words_per_item),
        function_ratio=grammatical / len(toks) if toks else 0.0,
        sentence_share=(
            sum(word_equivalents(s) for s in sentence_like) / max(1.0, word_equivalents(text))
        ),
        tokens=len(toks),
    )


def quote(items: Sequence[str] | Iterable[str], limit: int = 5) -> str:
    """'a, b, c (+2 more)'."""
    values = list(items)
    shown = ", ".join(values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")
