"""A small, dependency-free language detector for short support messages.

Used by the simulator (to answer in the user's language) and by checks that assert a reply is in
the expected language. It is deliberately simple and deterministic:

1. Letters are counted per Unicode script. CJK ideographs, kana and Hangul syllables weigh
   ``CJK_WEIGHT`` letters each, because one of them carries about a syllable while a Latin letter
   carries a fraction of one; digits, punctuation and symbols do not count.
2. The script with the largest weight decides: Han or kana -> ``ja`` when any kana is present
   (Japanese mixes kanji and kana), else ``zh``; Hangul -> ``ko``; Cyrillic -> ``ru``; Arabic ->
   ``ar``; Devanagari -> ``hi``; Thai -> ``th``; Hebrew -> ``he``; Greek -> ``el``.
3. Latin script is split by a stop-word vote among ``en``, ``es``, ``fr``, ``de``, ``pt`` and
   ``it`` (plus a few telling letters such as ``ñ``, ``ß`` or ``ã``); an undecided vote is ``en``.

Text with no letters at all (empty, digits, emoji) gives ``None``.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

__all__ = ["CJK_WEIGHT", "LATIN_LANGUAGES", "detect_language"]

# One ideograph / kana / Hangul syllable counts as this many Latin letters in the script vote.
CJK_WEIGHT = 3

# Latin-script languages the stop-word vote can return, in tie-break order.
LATIN_LANGUAGES: tuple[str, ...] = ("en", "es", "pt", "fr", "de", "it")

# Half-open code point ranges per script. U+30FB (middle dot) and U+30FC (prolonged sound mark)
# are left out of kana on purpose: Chinese text uses them too, and kana decides "ja" over "zh".
_SCRIPT_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "han": (
        (0x3400, 0x4DC0),
        (0x4E00, 0xA000),
        (0xF900, 0xFB00),
        (0x20000, 0x2FA20),
    ),
    "kana": (
        (0x3041, 0x3097),
        (0x309D, 0x30A0),
        (0x30A1, 0x30FB),
        (0x30FD, 0x3100),
        (0x31F0, 0x3200),
        (0xFF66, 0xFF9E),
    ),
    "hangul": ((0x1100, 0x1200), (0x3130, 0x3190), (0xA960, 0xA980), (0xAC00, 0xD7B0)),
    "cyrillic": ((0x0400, 0x0530),),
    "arabic": ((0x0600, 0x0700), (0x0750, 0x0780), (0x08A0, 0x0900), (0xFB50, 0xFE00)),
    "devanagari": ((0x0900, 0x0980),),
    "thai": ((0x0E00, 0x0E80),),
    "hebrew": ((0x0590, 0x0600),),
    "greek": ((0x0370, 0x0400), (0x1F00, 0x2000)),
    "latin": ((0x0041, 0x005B), (0x0061, 0x007B), (0x00C0, 0x0250), (0x1E00, 0x1F00)),
}

_SCRIPT_LANGUAGE: dict[str, str] = {
    "hangul": "ko",
    "cyrillic": "ru",
    "arabic": "ar",
    "devanagari": "hi",
    "thai": "th",
    "hebrew": "he",
    "greek": "el",
}

_WEIGHTED_SCRIPTS = frozenset({"han", "kana", "hangul"})


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words and a few everyday support words. A word listed under several languages votes
# for each of them; the words that only one language uses decide.
_STOP_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        """
        the and is are was were my you your to of it this that not have has had for with
        please can could would what why how when where did do does been be an at from i we
        our they hasn doesn didn isn haven wasn still yet hello hi thanks thank received as
        in on no me just but get got any there will twice today yesterday want need
        """
    ),
    "es": _words(
        """
        el la los las de que y en un una por para con no mi mis es está estoy su sus pero
        como del al lo le se muy ya hola gracias necesito quiero tengo ha he favor todavía
        dónde cuándo qué cómo hace llegado llegó este esta pedido mí sido ayuda pueden puede
        me veces dos hoy ayer puedo cuando
        """
    ),
    "pt": _words(
        """
        o os as de do da dos das e que em um uma não nao meu minha meus para com por no na
        se mais foi está estou ainda obrigado obrigada olá ola pedido você voce seu sua ao à
        é isso já chegou preciso este esta pode podem ajuda tenho vezes hoje ontem consigo
        quero posso quando
        """
    ),
    "fr": _words(
        """
        le la les de des du et est un une je mon ma mes pas que qui pour dans sur avec ce
        cette vous votre vos nous il elle ne au aux ai suis bonjour merci commande toujours
        reçu j qu n c été très mais me fois hier aujourd peux veux depuis plus
        """
    ),
    "de": _words(
        """
        der die das und ist nicht ich mein meine meinen meiner sie ihr ihre ein eine einen
        mit für auf von zu den dem des es wurde habe hat noch bitte immer warum wo wie keine
        kein bestellung hallo danke schon aber auch sind war wir uns mir mich an in zweimal
        heute gestern kann möchte bei
        """
    ),
    "it": _words(
        """
        il lo la gli le di che e è un una uno non per con mio mia miei sono ho ha del della
        dei al alla nel nella ancora grazie ciao buongiorno ordine perché questo questa ma
        anche mi ci si più stato in avete abbiamo volta volte stesso stessa vorrei riesco
        posso dove quando ieri oggi
        """
    ),
}

# Letters that (almost) only one or two of the Latin languages use; each occurrence is one vote.
_LETTER_HINTS: dict[str, tuple[str, ...]] = {
    "ñ": ("es",),
    "¿": ("es",),
    "¡": ("es",),
    "ã": ("pt",),
    "õ": ("pt",),
    "ç": ("fr", "pt"),
    "ß": ("de",),
    "ä": ("de",),
    "ö": ("de",),
    "ü": ("de",),
    "ê": ("fr", "pt"),
    "è": ("fr", "it"),
    "ù": ("fr", "it"),
    "î": ("fr",),
    "û": ("fr",),
    "œ": ("fr",),
    "ì": ("it",),
    "ò": ("it",),
}

_WORD_RE = re.compile(r"[^\W\d_]+")


@functools.lru_cache(maxsize=8192)
def _script_of(char: str) -> str | None:
    code = ord(char)
    for script, ranges in _SCRIPT_RANGES.items():
        for start, end in ranges:
            if start <= code < end:
                return script
    return None


def _latin_language(text: str) -> str:
    lowered = text.lower()
    votes: Counter[str] = Counter()
    for word in _WORD_RE.findall(lowered):
        for language in LATIN_LANGUAGES:
            if word in _STOP_WORDS[language]:
                votes[language] += 1
    for char in lowered:
        for language in _LETTER_HINTS.get(char, ()):
            votes[language] += 1
    if not votes:
        return "en"
    best = max(votes.values())
    # Ties go to the earlier language in LATIN_LANGUAGES, so the answer never depends on order
    # of iteration and an English-looking tie stays English.
    return next(language for language in LATIN_LANGUAGES if votes[language] == best)


def detect_language(text: str) -> str | None:
    """Return the ISO 639-1 code of the language ``text`` is written in, or ``None``.

    ``None`` means the text has no letters to judge by (empty, only digits, punctuation or emoji).
    Latin-script text that matches none of the known stop words is reported as ``"en"``.

    >>> detect_language("My package still hasn't arrived")
    'en'
    >>> detect_language("我的快递还没到")
    'zh'
    >>> detect_language("荷物がまだ届かない")
    'ja'
    """
    weights: Counter[str] = Counter()
    # Each distinct character is looked up once (Counter counts in C; the lookup is cached).
    for char, count in Counter(text).items():
        script = _script_of(char)
        if script is not None:
            weights[script] += count * (CJK_WEIGHT if script in _WEIGHTED_SCRIPTS else 1)
    if not weights:
        return None
    # Han and kana vote together: a Japanese sentence is often more kanji than kana.
    cjk = weights["han"] + weights["kana"]
    ranked = {script: weight for script, weight in weights.items() if script not in ("han", "kana")}
    if cjk:
        ranked["cjk"] = cjk
    # Sorting by name first makes equal weights resolve the same way every time.
    dominant = max(sorted(ranked), key=lambda script: ranked[script])
    if dominant == "cjk":
        return "ja" if weights["kana"] else "zh"
    if dominant == "latin":
        return _latin_language(text)
    return _SCRIPT_LANGUAGE[dominant]
