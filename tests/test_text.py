"""The text rules of names and emails."""

from __future__ import annotations

import sys
import unicodedata

from cadenya_server.profiles import text


def test_control_characters_are_unicodes_category_cc() -> None:
    wrong = [
        code
        for code in range(sys.maxunicode + 1)
        if text.has_control(f"a{chr(code)}b") != (unicodedata.category(chr(code)) == "Cc")
    ]
    assert wrong == []
