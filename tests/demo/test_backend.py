"""The demo backend: signatures checked, invoices, refunds once per call, public reads."""

from __future__ import annotations

import json
import time

from demo.backend import Ledger, handle, signature_valid
from orchestrator.alerts import webhook_signature

SECRET = "demo-secret-abcdefgh"


def signed(body: bytes, *, secret: str = SECRET, age: int = 0, call: str = "c1") -> dict:
    timestamp = str(int(time.time()) - age)
    return {
        "X-Superorch-Timestamp": timestamp,
        "X-Superorch-Signature": webhook_signature(secret, timestamp, body),
        "X-Superorch-Call": call,
    }


def ask(method, path, headers=None, body=b"", book=None):
    return handle(method, path, headers or {}, body, lambda: SECRET, book=book or Ledger())


def test_the_signature_check_takes_the_timestamp_and_the_body():
    body = b'{"a":1}'
    headers = signed(body)
    args = (headers["X-Superorch-Timestamp"], body, headers["X-Superorch-Signature"])
    assert signature_valid(SECRET, *args)
    assert not signature_valid("other", *args)
    assert not signature_valid(SECRET, args[0], b'{"a":2}', args[2])
    assert not signature_valid(SECRET, "not-a-time", body, args[2])
    old = signed(body, age=600)
    assert not signature_valid(
        SECRET, old["X-Superorch-Timestamp"], body, old["X-Superorch-Signature"]
    )


def test_invoices_are_read_with_or_without_a_signature_but_never_a_wrong_one():
    status, invoice = ask("GET", "/api/invoices/ACME-2024-000123")
    assert status == 200
    assert invoice == {
        "number": "ACME-2024-000123",
        "amount": "49.00",
        "currency": "EUR",
        "status": "paid",
        "date": "2024-03-01",
    }
    assert ask("GET", "/api/invoices/ACME-2024-000123", signed(b""))[0] == 200
    assert ask("GET", "/api/invoices/ACME-2024-000123", signed(b"", secret="x"))[0] == 401
    assert ask("GET", "/api/invoices/ACME-2024-999999")[0] == 404


def test_a_refund_needs_a_signature_and_happens_once_per_call():
    book = Ledger()
    body = json.dumps({"invoice": "ACME-2024-000123", "amount": "20.00"}).encode()
    assert ask("POST", "/api/refunds", {}, body, book)[0] == 401
    assert ask("POST", "/api/refunds", signed(body, secret="x"), body, book)[0] == 401
    status, refund = ask("POST", "/api/refunds", signed(body), body, book)
    assert status == 201 and set(refund) == {"id", "invoice", "amount", "created"}
    again = ask("POST", "/api/refunds", signed(body), body, book)  # the same call, sent twice
    assert again == (200, refund)
    status, listing = ask("GET", "/api/refunds", book=book)
    assert status == 200 and listing == [refund]  # a public read
    # More than is left, an open invoice, nonsense: refused in words.
    big = json.dumps({"invoice": "ACME-2024-000123", "amount": "40.00"}).encode()
    assert ask("POST", "/api/refunds", signed(big, call="c2"), big, book) == (
        422,
        {"error": "At most 29.00 can still be refunded."},
    )
    open_ = json.dumps({"invoice": "ACME-2024-000125", "amount": "1"}).encode()
    assert ask("POST", "/api/refunds", signed(open_, call="c3"), open_, book)[0] == 409
    assert ask("POST", "/api/refunds", signed(b"[", call="c4"), b"[", book)[0] == 400
