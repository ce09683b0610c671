"""Re-encrypting the encrypted columns (`manage.py rotate_keys`, the encryption
migrations): raw SQL by primary key in batches, so the values are handled as stored
(tokens, or plain text from before encryption) and never through the field's placeholder.

Per stored value: a token the first key opens is left alone (`current`: a second run
writes nothing); a token another key opens is re-encrypted with the first key
(`rotated`); plain text is encrypted (`encrypted`); a token no key opens is left as it is
(`unreadable`, its row ids logged). With `decrypt=True` (a migration run backwards) every
token is written back as plain text (`decrypted`). A column's blind index (`index`) is
rebuilt from the plain text wherever its source value was rotated or encrypted: index and
text are always under the same key.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.fernet import InvalidToken
from django.apps import apps as global_apps
from django.db import connections, transaction

from . import crypto_fields as crypto

logger = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass(frozen=True)
class Column:
    """One encrypted column: its table, primary key column and column, and the column of
    its blind index when it has one."""

    table: str
    pk: str
    column: str
    index: str = ""

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}"


def encrypted_columns(apps=global_apps, *, app_label: str = "") -> list[Column]:
    """Every encrypted column of every installed model (the live registry, or a
    migration's), or of one app's models."""
    found = []
    for model in apps.get_models():
        if app_label and model._meta.app_label != app_label:
            continue
        fields = model._meta.concrete_fields
        indexes = {f.source: f.column for f in fields if isinstance(f, crypto.BlindIndexField)}
        for field in fields:
            if isinstance(field, crypto.EncryptedTextField | crypto.EncryptedJSONField):
                found.append(
                    Column(
                        table=model._meta.db_table,
                        pk=model._meta.pk.column,
                        column=field.column,
                        index=indexes.get(field.name, ""),
                    )
                )
    return found


def _new_value(stored: str, ring: crypto.Keyring, *, decrypt: bool) -> tuple[str, str | None]:
    """(outcome, the plain text to store anew, or None to leave the row as it is).
    Raises InvalidToken for a token no key opens."""
    if not crypto.is_token(stored):
        return ("current", None) if decrypt else ("encrypted", stored)
    if decrypt:
        return "decrypted", crypto.decrypt(stored, ring=ring)
    try:
        ring.primary.decrypt(stored.encode())
        return "current", None
    except InvalidToken:
        return "rotated", crypto.decrypt(stored, ring=ring)


def reseal(
    column: Column, *, using: str = "default", batch_size: int = BATCH_SIZE, decrypt: bool = False
) -> Counter:
    """Re-encrypt (or with `decrypt`, decrypt) one column in batches; the counts by outcome."""
    connection = connections[using]
    qn = connection.ops.quote_name
    table, pk, col = qn(column.table), qn(column.pk), qn(column.column)
    select = f"SELECT {pk}, {col} FROM {table} WHERE {col} IS NOT NULL AND {col} <> ''"
    sets = f"{col} = %s" + (f", {qn(column.index)} = %s" if column.index else "")
    update = f"UPDATE {table} SET {sets} WHERE {pk} = %s"
    ring = crypto.keyring()
    counts: Counter = Counter()
    unreadable: list = []
    last = None
    while True:
        with connection.cursor() as cursor:
            after = "" if last is None else f" AND {pk} > %s"
            cursor.execute(
                f"{select}{after} ORDER BY {pk} LIMIT %s",
                [batch_size] if last is None else [last, batch_size],
            )
            rows = cursor.fetchall()
        if not rows:
            return counts
        writes = []
        for key, stored in rows:
            try:
                outcome, plain = _new_value(stored, ring, decrypt=decrypt)
            except InvalidToken:
                counts["unreadable"] += 1
                unreadable.append(key)
                continue
            counts[outcome] += 1
            if plain is None:
                continue
            value = plain if decrypt else crypto.encrypt(plain, ring=ring)
            index = [crypto.search_terms(plain)] if column.index else []
            writes.append([value, *index, key])
        if writes:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.executemany(update, writes)
        if unreadable:
            logger.warning(
                "%s: %d value(s) no configured key opens (ids %s); left as they are",
                column.label,
                len(unreadable),
                ", ".join(str(k) for k in unreadable[:20]),
            )
            unreadable = []
        last = rows[-1][0]


def reseal_all(
    columns: Iterable[Column],
    *,
    using: str = "default",
    batch_size: int = BATCH_SIZE,
    decrypt: bool = False,
) -> dict[str, Counter]:
    """reseal() over the columns; the counts per column label."""
    return {
        c.label: reseal(c, using=using, batch_size=batch_size, decrypt=decrypt) for c in columns
    }


def migration_operation(app_label: str):
    """The encryption migrations' data step: encrypt every row of the app's encrypted
    columns (and build the blind indexes); backwards, decrypt them again."""
    from django.db import migrations

    def forwards(apps, schema_editor):
        columns = encrypted_columns(apps, app_label=app_label)
        reseal_all(columns, using=schema_editor.connection.alias)

    def backwards(apps, schema_editor):
        columns = encrypted_columns(apps, app_label=app_label)
        reseal_all(columns, using=schema_editor.connection.alias, decrypt=True)

    return migrations.RunPython(forwards, backwards, elidable=False)
