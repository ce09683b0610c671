"""The staff search over encrypted messages: a blind index (docs/privacy.md).

Message texts are encrypted at rest, so SQL cannot look inside them. Each message keeps
`search_index`: keyed HMAC digests of its normalised words and of their first 3 to 8
letters (orchestrator.crypto_fields.search_terms), written with the text. A search
hashes its own words the same way and finds the messages holding every one of them, in
one SQL condition (a `LIKE` per word and key), inside the inbox's one query.

Whole words and word beginnings are found ("refund" finds "refunds" and "Refund!",
"cafe" finds "café"), never the middle of a word ("fund" does not find "refund"), and
words of one letter are ignored.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from orchestrator import crypto_fields

from .models import Message


def search_condition(query: str) -> Q | None:
    """The condition on Message finding every word of `query`; None when the query has
    no word to search for (only one-letter words or punctuation)."""
    words = crypto_fields.query_digests(query)
    if not words:
        return None
    condition = Q()
    for digests in words:  # one digest per configured key: rows of before a rotation
        alternatives = Q()
        for digest in digests:
            alternatives |= Q(search_index__contains=f" {digest} ")
        condition &= alternatives
    return condition


def messages_matching(query: str) -> QuerySet[Message]:
    """The messages holding every word of the query (none for a query without words)."""
    condition = search_condition(query)
    if condition is None:
        return Message.objects.none()
    return Message.objects.filter(condition)
