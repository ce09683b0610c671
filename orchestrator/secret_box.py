"""Encryption at rest for the secrets actions send (cryptography's MultiFernet).

The key is derived from Django's SECRET_KEY; SECRET_KEY_FALLBACKS keep older values
readable, so rotating the secret key follows Django's own procedure (rotate, then
re-save the secrets, then drop the fallback). A value that no key opens reads as None:
the call using it is refused in plain words and staff re-enter it.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

_CONTEXT = b"superorch action secrets v1:"


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(_CONTEXT + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _box() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(k) for k in keys])


def seal(value: str) -> str:
    return _box().encrypt(value.encode()).decode()


def unseal(token: str) -> str | None:
    if not token:
        return None
    try:
        return _box().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
