"""The console's Vietnamese catalog is complete, keeps each placeholder, and its committed
compiled form matches it (how to update both: admin/console/translations/README.md)."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "admin" / "console"
CATALOG = CONSOLE / "translations" / "vi" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "_l": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> set[str]:
    found = extract_from_dir(str(CONSOLE), METHODS, keywords=KEYWORDS)
    return {message[0] if isinstance(message, tuple) else message for _, _, message, _, _ in found}


def catalog() -> dict[str, str]:
    with open(CATALOG / "messages.po", "rb") as handle:
        po = read_po(handle, locale="vi")
    return {str(m.id[0] if isinstance(m.id, (tuple, list)) else m.id):
            str(m.string[0] if isinstance(m.string, (tuple, list)) else m.string) for m in po if m.id}  # fmt: skip


def test_every_console_message_has_vietnamese() -> None:
    translated = {msgid for msgid, text in catalog().items() if text}
    assert extracted() - translated == set()


def test_the_catalog_holds_no_message_the_console_no_longer_uses() -> None:
    assert set(catalog()) - extracted() == set()


def test_each_translation_keeps_the_placeholders_of_its_message() -> None:
    for msgid, text in catalog().items():
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(text)), msgid


def test_the_committed_compiled_catalog_matches_the_po_file() -> None:
    with open(CATALOG / "messages.mo", "rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for msgid, text in catalog().items():
        assert compiled.gettext(msgid) == text, f"{msgid!r}: run pybabel compile (translations/README.md)"
