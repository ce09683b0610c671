"""Encryption at rest for the columns that hold people's words (docs/privacy.md).

`EncryptedTextField` and `EncryptedJSONField` store a Fernet token (AES-128-CBC with an
HMAC-SHA256, cryptography's MultiFernet) in a text column and hand the code the plain
value: reads, writes, `update()` and `bulk_create()` all go through the field, so the
code above it never sees ciphertext.

Keys: `SUPERORCH_FIELD_KEYS` (a list of Fernet keys; the first encrypts, every one
decrypts). Unset, as in development and the tests, one key is derived from SECRET_KEY
(and one more from each SECRET_KEY_FALLBACKS entry); the production settings refuse to
start without it, so rotating Django's secret key never touches the stored texts.
`manage.py rotate_keys` re-encrypts every column with the first key.

A token no key opens (a key dropped too soon, a database restored beside the wrong
settings) reads as `UNREADABLE` (the JSON fields: `{"unreadable": UNREADABLE}`) and logs
a warning naming the column, never its content: a page shows the placeholder, not a 500.

Rows written before encryption (plain text in the column) still read as they are until
the migration or `rotate_keys` encrypts them: a Fernet token always starts with
TOKEN_PREFIX (version byte 0x80 and a timestamp), plain text practically never does.

Blind index: `search_terms` turns a text into keyed HMAC digests of its normalised words
and word prefixes; `query_digests` does the same for a search's words, so equal words
can be found without the text (chat.search).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
import unicodedata
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.core.exceptions import FieldError
from django.db import models
from django.db.models.lookups import Exact, IsNull

logger = logging.getLogger(__name__)

UNREADABLE = "[this text cannot be read: its encryption key is not configured]"
TOKEN_PREFIX = "gAAAAA"
_DERIVE_CONTEXT = b"superorch field encryption v1:"
_INDEX_CONTEXT = b"superorch search index v1:"
DIGEST_CHARS = 12  # hex characters of each index digest (48 bits)
PREFIX_MIN = 3  # a word is found by its first 3..PREFIX_MAX letters, or as a whole
PREFIX_MAX = 8
WARN_EVERY = 60.0  # seconds between two warnings about one column's unreadable values


def derived_key(secret: str) -> str:
    """A Fernet key derived from a Django secret key (development and tests only)."""
    digest = hashlib.sha256(_DERIVE_CONTEXT + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def valid_key(key: str) -> bool:
    """Whether `key` is a Fernet key: 32 bytes in URL-safe base64."""
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def configured_keys() -> tuple[str, ...]:
    """SUPERORCH_FIELD_KEYS, or the keys derived from SECRET_KEY and its fallbacks."""
    keys = tuple(getattr(settings, "SUPERORCH_FIELD_KEYS", None) or ())
    if keys:
        return keys
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return tuple(derived_key(s) for s in secrets)


class Keyring:
    """The Fernets and index keys of one key set (built once per set, see keyring())."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("No encryption key is configured (SUPERORCH_FIELD_KEYS).")
        self.fernets = [Fernet(k) for k in keys]
        self.primary = self.fernets[0]
        self.multi = MultiFernet(self.fernets)
        self.index_keys = [
            hashlib.sha256(_INDEX_CONTEXT + base64.urlsafe_b64decode(k)).digest() for k in keys
        ]

    def digest(self, term: str, *, key: bytes | None = None) -> str:
        mac = hmac.new(key or self.index_keys[0], term.encode(), hashlib.sha256)
        return mac.hexdigest()[:DIGEST_CHARS]


@lru_cache(maxsize=8)
def _keyring(keys: tuple[str, ...]) -> Keyring:
    return Keyring(keys)


def keyring() -> Keyring:
    """The keyring of the configured keys (cached per key set: settings overridden in a
    test get their own, nothing is rebuilt per value)."""
    return _keyring(configured_keys())


def is_token(stored: str) -> bool:
    return stored.startswith(TOKEN_PREFIX)


def encrypt(plain: str, *, ring: Keyring | None = None) -> str:
    # surrogatepass: a lone surrogate an older server let through stays readable
    return (ring or keyring()).primary.encrypt(plain.encode("utf-8", "surrogatepass")).decode()


def decrypt(stored: str, *, ring: Keyring | None = None) -> str:
    """The plain text of a stored value; raises InvalidToken when no key opens it."""
    if not is_token(stored):
        return stored  # written before encryption; the migration or rotate_keys seals it
    plain = (ring or keyring()).multi.decrypt(stored.encode())
    return plain.decode("utf-8", "surrogatepass")


def opened(stored: str | None, *, label: str = "") -> str | None:
    """A stored value's plain text, or the JSON of the placeholder when no key opens it
    (for pages that read a JSON column as text, chat.admin)."""
    if stored is None:
        return None
    try:
        return decrypt(stored)
    except InvalidToken:
        _warn_unreadable(label or "a column")
        return json.dumps({"unreadable": UNREADABLE})


_warned: dict[str, float] = {}


def _warn_unreadable(label: str) -> None:
    now = time.monotonic()
    if now - _warned.get(label, -WARN_EVERY) >= WARN_EVERY:
        _warned[label] = now
        logger.warning(
            "%s: a stored value cannot be decrypted with the configured keys "
            "(SUPERORCH_FIELD_KEYS); it reads as a placeholder",
            label,
        )


def _field_label(field: models.Field) -> str:
    model = getattr(field, "model", None)
    return f"{model._meta.label}.{field.name}" if model else field.name


class _EmptyOnlyExact(Exact):
    """`field=""` works (empty values are stored empty); any other value cannot match
    a random ciphertext, so it is refused rather than silently finding nothing."""

    def get_prep_lookup(self):
        if self.rhs != "":
            raise FieldError(
                f"{_field_label(self.lhs.output_field)} is encrypted: it can only be "
                "compared with an empty string (search messages through chat.search)."
            )
        return super().get_prep_lookup()


class _EncryptedMixin:
    """Lookups on ciphertext: only isnull and the empty value."""

    def get_lookup(self, lookup_name: str):
        if lookup_name == "isnull":
            return IsNull
        if lookup_name == "exact":
            return _EmptyOnlyExact
        return None

    def get_transform(self, lookup_name: str):
        return None


class EncryptedTextField(_EncryptedMixin, models.TextField):
    """A TextField stored as a Fernet token (an empty string stays empty)."""

    description = "Text, encrypted at rest"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if not value:
            return value
        try:
            return decrypt(value)
        except (InvalidToken, ValueError):
            _warn_unreadable(_field_label(self))
            return UNREADABLE

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


class EncryptedJSONField(_EncryptedMixin, models.TextField):
    """A JSON value stored as a Fernet token in a text column. SQL NULL (null=True) is
    None; any other value, `{}` included, is encrypted."""

    description = "JSON, encrypted at rest"
    empty_strings_allowed = False

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        try:
            return json.loads(decrypt(value))
        except (InvalidToken, ValueError, RecursionError):
            _warn_unreadable(_field_label(self))
            return {"unreadable": UNREADABLE}

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None and self.null:
            return None
        return encrypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def value_to_string(self, obj: models.Model) -> Any:
        return self.value_from_object(obj)  # as JSONField: the serializers write the value

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": forms.JSONField, **kwargs})


# The blind index --------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def normalised_words(text: str) -> list[str]:
    """The words of a text, case-folded and without accents ("Ça coûte" -> ["ca", "coute"]);
    single letters are dropped."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in folded if not unicodedata.combining(c))
    return [w for w in _WORD.findall(bare) if len(w) > 1]


def _terms(word: str) -> range:
    """The lengths of a word's indexed prefixes: PREFIX_MIN..PREFIX_MAX letters, the word
    itself when shorter (so "id" is found as "id", "password" as "pas" .. "password")."""
    return range(min(len(word), PREFIX_MIN), min(len(word), PREFIX_MAX) + 1)


def search_terms(text: str) -> str:
    """The blind index of a text: space-separated digests with a space at each end (one
    `contains " digest "` per searched word), empty for a text without words."""
    ring = keyring()
    terms = {word[:n] for word in set(normalised_words(text)) for n in _terms(word)}
    if not terms:
        return ""
    return " " + " ".join(sorted(ring.digest(t) for t in terms)) + " "


def query_digests(query: str) -> list[list[str]]:
    """For each distinct word of a search: its digests under every configured key (so
    rows indexed before a rotation are still found). A word matches a stored word equal
    to it or starting with it; words longer than PREFIX_MAX match on their first
    PREFIX_MAX letters."""
    ring = keyring()
    words = dict.fromkeys(w[:PREFIX_MAX] for w in normalised_words(query))
    return [[ring.digest(w, key=key) for key in ring.index_keys] for w in words]


class BlindIndexField(models.TextField):
    """The blind index of another field of the model (`source`), written on every save
    and bulk_create from the plain value (chat.Message.search_index). `.update()` of the
    source does not reach it: save the instance instead."""

    description = "Search digests of another field"

    def __init__(self, *args: Any, source: str = "text", **kwargs: Any) -> None:
        self.source = source
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        value = search_terms(getattr(model_instance, self.source) or "")
        setattr(model_instance, self.attname, value)
        return value
