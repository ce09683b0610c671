"""Masking personal data in users' messages, per site (docs/privacy.md, "Redaction").

A site can mask card numbers, e-mail addresses and phone numbers (Site.redact_cards,
redact_emails, redact_phones; all off by default). The message is masked when it
arrives (services.message_receive), before it is stored: the database, the agents'
models, the logs and the staff only ever see `[card number]`, `[email]`, `[phone]`,
and so does the user when their message comes back (the stored text is the one shown).

- Card numbers: 13 to 19 digits, in groups separated by single spaces or dashes, that
  pass the Luhn check (so most order numbers and dates are left alone).
- E-mail addresses: name@domain.tld.
- Phone numbers: an optional +, then 9 to 15 digits with spaces, dashes, dots or
  parentheses between them. Any long number matches, order numbers included: that is why
  it is a choice per site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CARD = "[card number]"
EMAIL = "[email]"
PHONE = "[phone]"

_CARD = re.compile(r"(?<![\w+])\d(?:[ -]?\d){12,18}(?![\w])")
_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}", re.UNICODE)
_PHONE = re.compile(r"(?<![\w+])(?:\+|\(\+?)?\d(?:[ ().-]{0,2}\d){8,14}(?![\w])")


@dataclass(frozen=True)
class Redaction:
    """What a site masks."""

    cards: bool = False
    emails: bool = False
    phones: bool = False

    @classmethod
    def of_site(cls, site) -> Redaction:
        return cls(cards=site.redact_cards, emails=site.redact_emails, phones=site.redact_phones)

    def __bool__(self) -> bool:
        return self.cards or self.emails or self.phones


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (card numbers pass it)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group())
    return CARD if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group()


def redact(text: str, redaction: Redaction) -> str:
    """The text with what `redaction` names masked (unchanged when it names nothing)."""
    if not redaction:
        return text
    if redaction.cards:
        text = _CARD.sub(_card, text)
    if redaction.emails:
        text = _EMAIL.sub(EMAIL, text)
    if redaction.phones:
        text = _PHONE.sub(PHONE, text)
    return text
