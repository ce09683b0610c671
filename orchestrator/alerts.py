"""Alert rules: evaluate them, raise an alert once per incident, clear it once it recovers,
and tell people (an email, a webhook POST signed with HMAC-SHA256).

`alerts_evaluate` is idempotent and safe to run from several processes at once (one
open alert per rule is a database constraint). It runs after chat turns and on the
dashboard's refresh, at most every SUPERORCH_ALERT_INTERVAL seconds per process
(`alerts_maybe_evaluate`), and from `manage.py check_alerts` (cron, or Celery beat
with the `orchestrator.check_alerts` task).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from . import stats
from .models import Alert, AlertRule
from .throttle import Throttle

log = logging.getLogger(__name__)


throttle = Throttle()  # when this process last evaluated the rules


def alerts_maybe_evaluate() -> threading.Thread | None:
    """Evaluate the rules on a background thread if this process has not done so in the
    last SUPERORCH_ALERT_INTERVAL seconds (0: never here). Cheap enough for the event loop:
    the database work and the notifications happen on the thread."""
    if not throttle.due(settings.SUPERORCH_ALERT_INTERVAL):
        return None
    thread = threading.Thread(target=_evaluate_in_thread, name="alert-rules", daemon=True)
    thread.start()
    return thread


def _evaluate_in_thread() -> None:
    close_old_connections()
    try:
        alerts_evaluate()
    except Exception:  # alerting must never break a turn or a page
        log.exception("evaluating alert rules failed")
    finally:
        connection.close()


def alerts_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    done = {"raised": 0, "cleared": 0}
    for rule in AlertRule.objects.filter(enabled=True):
        value, runs = stats.rule_figure(
            metric=rule.metric,
            agent_slug=rule.agent_slug,
            since=now - timedelta(minutes=rule.window_minutes),
            until=now,
        )
        enough = value is not None and runs >= rule.min_runs
        breached = enough and value > rule.threshold
        recovered = enough and value <= rule.threshold  # no data is not a recovery
        open_alert = rule.alerts.filter(cleared_at__isnull=True).first()
        if breached and open_alert is None:
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        rule=rule, raised_at=now, value=value, last_value=value
                    )
            except IntegrityError:  # another process raised it a moment ago
                continue
            done["raised"] += 1
            _notify(rule, alert, "raised", value)
        elif breached:
            Alert.objects.filter(pk=open_alert.pk).update(last_value=value)
        elif open_alert is not None and recovered:
            cleared = Alert.objects.filter(pk=open_alert.pk, cleared_at__isnull=True).update(
                cleared_at=now, last_value=value
            )
            if cleared:
                done["cleared"] += 1
                _notify(rule, open_alert, "cleared", value)
    return done


def _describe(rule: AlertRule, state: str, value: float | None) -> str:
    figure = (
        "no data"
        if value is None
        else (f"{value:.1%}" if rule.metric == "error_rate" else f"{value:.0f} ms")
    )
    line = f"{rule.threshold:.1%}" if rule.metric == "error_rate" else f"{rule.threshold:.0f} ms"
    scope = f"agent {rule.agent_slug}" if rule.agent_slug else "all agents"
    verb = "is above" if state == "raised" else "is back under"
    return (
        f"{rule.get_metric_display()} for {scope} {verb} {line} over the last "
        f"{rule.window_minutes} minutes: {figure}."
    )


def _notify(rule: AlertRule, alert: Alert, state: str, value: float | None) -> None:
    text = _describe(rule, state, value)
    notes: list[str] = []
    if rule.email:
        recipients = [a.strip() for a in rule.email.split(",") if a.strip()]
        try:
            send_mail(
                f"[Super Orchestrator] {'Alert' if state == 'raised' else 'Recovered'}: {rule.name}",
                text,
                None,
                recipients,
            )
            notes.append(f"{state}: emailed {', '.join(recipients)}")
        except Exception as exc:
            log.warning("alert email for %s failed: %s", rule.name, exc)
            notes.append(f"{state}: email failed ({type(exc).__name__})")
    if rule.webhook_url:
        payload = {
            "alert": rule.name,
            "state": state,
            "metric": rule.metric,
            "agent": rule.agent_slug or None,
            "value": value,
            "threshold": rule.threshold,
            "window_minutes": rule.window_minutes,
            "raised_at": alert.raised_at.isoformat(),
            "text": text,
        }
        notes.append(
            f"{state}: webhook {webhook_post(rule.webhook_url, rule.webhook_secret, payload)}"
        )
    if notes:
        previous = (
            Alert.objects.filter(pk=alert.pk).values_list("notified", flat=True).first() or ""
        )
        Alert.objects.filter(pk=alert.pk).update(
            notified="\n".join(filter(None, [previous, *notes]))
        )


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of "<timestamp>.<body>": a receiver that checks the timestamp is recent
    cannot be fed an old request again."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_post(url: str, secret: str, payload: dict[str, Any]) -> str:
    """POST the payload as JSON, signed (X-Superorch-Timestamp, X-Superorch-Signature);
    returns what happened."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", "superorch-alerts/1")
    if secret:
        timestamp = str(int(time.time()))
        request.add_header("X-Superorch-Timestamp", timestamp)
        request.add_header("X-Superorch-Signature", webhook_signature(secret, timestamp, body))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (staff-set URL)
            return f"HTTP {response.status}"
    except Exception as exc:
        log.warning("webhook %s failed: %s", url, exc)
        return f"failed ({type(exc).__name__})"
