"""The demo customer's own backend: what the seeded actions call (make run: PORT+1).

A site owner's system in miniature, and the reference for docs/actions.md: it checks
each request's signature (HMAC-SHA256 of "<timestamp>.<body>" with the action's signing
secret, the timestamp within five minutes) and answers JSON.

- GET /api/invoices/<number>: a fixture invoice, or 404;
- POST /api/refunds {"invoice", "amount", "reason"?}: signed requests only; one refund per
  call id (X-Superorch-Call), so a request sent twice refunds once; 201 with the refund;
- GET /api/refunds: every refund so far, a JSON list of {"id", "invoice", "amount",
  "created"} (reads need no signature: anyone can check what was refunded; a read that
  carries a signature must carry a valid one).

Refunds live in this process's memory (a restart forgets them). Not product code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

SIGNATURE_TOLERANCE = 300  # seconds
DEMO_SECRET_NAME = "acme_backend"  # the seeded actions' signing secret (orchestrator seed)
INVOICES: dict[str, dict[str, str]] = {
    "ACME-2024-000123": {
        "number": "ACME-2024-000123",
        "amount": "49.00",
        "currency": "EUR",
        "status": "paid",
        "date": "2024-03-01",
    },
    "ACME-2024-000124": {
        "number": "ACME-2024-000124",
        "amount": "240.00",
        "currency": "EUR",
        "status": "paid",
        "date": "2024-04-01",
    },
    "ACME-2024-000125": {
        "number": "ACME-2024-000125",
        "amount": "12.00",
        "currency": "EUR",
        "status": "open",
        "date": "2024-05-01",
    },
}
_INVOICE_PATH = re.compile(r"^/api/invoices/([A-Za-z0-9-]{1,40})$")


def signature_valid(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None
) -> bool:
    """The check every receiving system makes (docs/actions.md has it in Python and Node)."""
    if not secret or not timestamp.isdigit():
        return False
    if abs((now or time.time()) - int(timestamp)) > SIGNATURE_TOLERANCE:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), signature)


@dataclass
class Ledger:
    """The refunds made, one per call id."""

    refunds: list[dict[str, str]] = field(default_factory=list)
    by_call: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refund(self, invoice: dict[str, str], amount: Decimal, call: str) -> tuple[int, dict]:
        with self.lock:
            if call and call in self.by_call:
                return 200, self.by_call[call]  # the same request again: the same refund
            done = sum(
                Decimal(r["amount"]) for r in self.refunds if r["invoice"] == invoice["number"]
            )
            if done + amount > Decimal(invoice["amount"]):
                left = Decimal(invoice["amount"]) - done
                return 422, {"error": f"At most {left:.2f} can still be refunded."}
            refund = {
                "id": f"rf_{len(self.refunds) + 1}",
                "invoice": invoice["number"],
                "amount": f"{amount:.2f}",
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self.refunds.append(refund)
            if call:
                self.by_call[call] = refund
            return 201, refund

    def listing(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self.refunds)


ledger = Ledger()


def handle(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    secret: Callable[[], str],
    *,
    book: Ledger | None = None,
) -> tuple[int, Any]:
    """(HTTP status, JSON payload) for one request. `secret`: the signing secret, asked
    for only when a request carries a signature or must."""
    book = book or ledger
    signed = "X-Superorch-Signature" in headers
    if (signed or method != "GET") and not signature_valid(
        secret(),
        headers.get("X-Superorch-Timestamp", ""),
        body,
        headers.get("X-Superorch-Signature", ""),
    ):
        return 401, {"error": "The request's signature is missing, wrong or too old."}
    if method == "GET" and path == "/api/refunds":
        return 200, book.listing()
    match = _INVOICE_PATH.match(path)
    if method == "GET" and match:
        invoice = INVOICES.get(match.group(1).upper())
        return (200, invoice) if invoice else (404, {"error": "No such invoice."})
    if method == "POST" and path == "/api/refunds":
        return _refund(body, headers.get("X-Superorch-Call", ""), book)
    return 404, {"error": "Not found."}


def _refund(body: bytes, call: str, book: Ledger) -> tuple[int, Any]:
    try:
        data = json.loads(body or b"{}")
        invoice = INVOICES.get(str(data.get("invoice", "")).upper())
        amount = Decimal(str(data.get("amount", "")))
    except (ValueError, AttributeError, InvalidOperation):
        return 400, {"error": 'Send {"invoice": ..., "amount": "12.34"} as JSON.'}
    if invoice is None:
        return 404, {"error": "No such invoice."}
    if invoice["status"] != "paid":
        return 409, {"error": "Only a paid invoice can be refunded."}
    if not amount.is_finite() or amount <= 0:
        return 400, {"error": "The amount must be above zero."}
    return book.refund(invoice, amount, call)
