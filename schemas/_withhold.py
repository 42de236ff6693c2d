"""Golden rule 5: protect the identity of anyone who could be harmed if it were known.

A protected third party's name reaches the recipient in many forms besides the one the
practitioner typed: a surname alone, "Mrs Smith", "Smith, Jane", a line break or a non-breaking
space between the names, "Smith's", "ZOË" for "Zoe". `Withholder` finds every run of a protected
person's name parts in a text, whole words only, whatever the case, accents, spacing or order,
with a title before it, and replaces the run by WITHHELD.

Some mentions cannot be made safe by a program, and are reported instead (`Withheld.unsafe`):

- a part the protected person shares with the child or with a third party who is not protected
  ("Mrs Smith" when the child is Tom Smith): withholding it would hide them too, leaving it could
  name the protected person. A run that another part settles ("Tom Smith", "Jane Smith") is fine;
- a part of one or two letters, or one that is also an everyday word ("Hope", "Brown"), found on
  its own: cutting "we hope" would point at the name, and leaving it may name the person.
  Inside a run ("Hope Smith", "Ms Li") it is withheld with the run.

Initials on their own are neither withheld nor flagged: a lone letter names nobody, and is "a"
and "I" in every sentence. Pure functions, no I/O; the result holds counts, never the names.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from ._request import ShareRequest

WITHHELD = "[identity withheld]"

_TITLES = (
    "mr", "mrs", "ms", "miss", "mx", "mister", "master", "dr", "doctor", "prof", "professor", "sir",
    "dame", "lady", "lord", "rev", "revd", "reverend", "fr", "pc", "dc", "ds", "sgt", "cllr",
)

# Name parts that are also everyday words: alone, whether they are the name cannot be told. A
# deliberately small list (any word can be a surname); parts under three letters count too.
_WORDS = frozenset(
    """
    will hope grace faith joy rose may june april august summer autumn dawn ruby amber pearl holly
    ivy iris lily daisy violet heather poppy sunny sky rain river angel honey bill rob pat sue mark
    jack frank grant guy rich sandy gene ray dean drew chase hunter miles norm art carol penny peg
    kit earl duke prince king brown white green black gray grey young wood hill hall baker cook
    mason turner walker bishop price long lane field page fisher bell bird fox lamb love little
    house rice ward porter potter shepherd knight marsh moss sharp strong wise best moon stone
    street church cross day english french hunt lock mills park pool read reed short small snow
    north south east west spring swift waters wells van von der den del dos das
""".split()  # noqa: SIM905 - a word list reads best as text
)

# Characters read the same way in a name: curly apostrophes, and a zero-width space, which
# separates words on the page without showing a gap.
_SAME = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u2032": "'", "\u200b": " "}
_ALNUM = r"[^\W_]"
_SEP = r"(?:\s*,\s*|\s*-\s*|\s+)"  # "Jane Smith", "Smith, Jane", "Smith-Jones", line breaks
_TOKEN = re.compile(rf"{_ALNUM}+(?:'{_ALNUM}+)*")


def _plain(text: str) -> str:
    out = []
    for c in unicodedata.normalize("NFKD", text):
        if c in _SAME:
            out.append(_SAME[c])
            continue
        kind = unicodedata.category(c)
        if kind in ("Mn", "Cf"):  # accents and other combining marks; soft hyphens, joiners
            continue
        out.append("-" if kind == "Pd" else c)
    return "".join(out)


@functools.lru_cache(maxsize=8192)
def _fold_char(c: str) -> str:
    # Twice: case folding can itself produce a combining mark ("İ" folds to "i" + dot above).
    return _plain(_plain(c).casefold())


def _fold(text: str) -> tuple[str, list[int] | range]:
    """Text as it is matched (compatibility forms, no accents, case folded), and where each of its
    characters came from in the original, so that a match is cut from the original."""
    if text.isascii():
        return text.lower().replace("`", "'"), range(len(text))
    folded, origin = [], []
    for i, c in enumerate(text):
        for f in _fold_char(c):
            folded.append(f)
            origin.append(i)
    return "".join(folded), origin


def name_parts(name: str) -> set[str]:
    """A name's parts as matched: "Mrs Zoë Smith-Jones" -> {"zoe", "smith", "jones"}. Only a
    leading title is dropped: "Lord" is a surname in "Jane Lord"."""
    parts = _TOKEN.findall(_fold(name)[0])
    while len(parts) > 1 and parts[0] in _TITLES:
        parts.pop(0)
    return set(parts)


@dataclass(frozen=True)
class Withheld:
    """One text with the names withheld, and how many mentions were withheld or left unsafe."""

    text: str
    withheld: int
    unsafe: int

    @property
    def mentions_protected(self) -> bool:
        return bool(self.withheld or self.unsafe)

    @property
    def safe(self) -> bool:
        """Whether the text can go to the recipient: no mention was left that a person must judge."""
        return not self.unsafe


class _Runs:
    """Runs of one group's name parts: an optional title, parts or initials joined by spaces,
    hyphens or a comma; whole words. An initial is taken only with a dot or before another part."""

    def __init__(self, parts: set[str], others: set[str]) -> None:
        self.full = {p for p in parts if len(p) > 1}
        # Parts only this group has, which say whose name a run is.
        self.own = self.full - others
        alt = "|".join(re.escape(p) for p in sorted(self.full, key=len, reverse=True))
        initials = "|".join(re.escape(i) for i in sorted({p[0] for p in parts}))
        full = rf"(?:{alt})(?!{_ALNUM})"
        initial = rf"(?:{initials})(?!{_ALNUM})"
        token = rf"(?:{full}|{initial}(?:\.|(?={_SEP}(?:{full}|{initial}))))"
        titles = "|".join(_TITLES)
        self.pattern = re.compile(
            rf"(?<!{_ALNUM})(?:(?P<title>{titles})(?!{_ALNUM})\.?\s*)?(?P<names>{token}(?:{_SEP}{token})*)"
        )

    def find(self, folded: str) -> Iterable[tuple[tuple[int, int], bool]]:
        """Each run with a whole part in it, and whether it surely is this group's name."""
        if not self.full:
            return
        for m in self.pattern.finditer(folded):
            tokens = _TOKEN.findall(m["names"])
            if not any(t in self.full for t in tokens):
                continue  # initials only
            own = [t for t in tokens if t in self.own]
            sure = bool(own) and (
                bool(m["title"]) or len(tokens) > 1 or any(len(t) > 2 and t not in _WORDS for t in own)
            )
            yield m.span(), sure


class Withholder:
    """Withholds protected people's names from text; built once per request."""

    def __init__(self, protected: Iterable[str], others: Iterable[str] = ()) -> None:
        mine = set().union(*map(name_parts, protected))
        theirs = set().union(*map(name_parts, others))
        self._protected = _Runs(mine, theirs)
        self._others = _Runs(theirs, mine)

    @classmethod
    def for_request(cls, request: ShareRequest) -> Withholder:
        """The request's protected third parties, told apart from the child and the others."""
        return cls(
            [t.name for t in request.third_parties if t.protected],
            [request.subject.name, *(t.name for t in request.third_parties if not t.protected)],
        )

    def __call__(self, text: str, *, strict: bool = False) -> Withheld:
        """`strict`: withhold the mentions a person would have to judge as well, for text that
        cannot be left out as a whole (a purpose statement); it may then hide someone else's name."""
        folded, origin = _fold(text)
        cuts, unsure = [], []
        for span, sure in self._protected.find(folded):
            (cuts if sure else unsure).append(span)
        if unsure:
            # A shared part is the other person's where a run surely theirs holds it ("Tom Smith").
            theirs = [span for span, sure in self._others.find(folded) if sure]
            unsure = [(a, b) for a, b in unsure if not any(x <= a and b <= y for x, y in theirs)]
        if strict:
            cuts, unsure = sorted(cuts + unsure), []
        out, at = [], 0
        for a, b in cuts:
            start, end = origin[a], origin[b] if b < len(folded) else len(text)
            out += [text[at:start], WITHHELD]
            at = end
        out.append(text[at:])
        return Withheld("".join(out), withheld=len(cuts), unsafe=len(unsure))
