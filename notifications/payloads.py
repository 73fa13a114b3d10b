"""What each kind of channel receives for one notice: pure functions of the notice.

- webhook: Alertmanager's webhook payload, version 4, with one alert, so anything that already
  receives Alertmanager's webhooks receives ours unchanged;
- slack: `{"text", "blocks"}` (Slack's incoming webhooks; Mattermost and Rocket.Chat read `text`);
- alertmanager: a list of one postable alert for `POST /api/v2/alerts` (Alertmanager's OpenAPI
  `postableAlerts`);
- email: a subject and a plain-text body.
"""

import json
import time

from django.conf import settings

from notifications.notices import AlertNotice, rfc3339


def external_url() -> str:
    return settings.EXTERNAL_URL.rstrip("/")


def alert_link(notice: AlertNotice) -> str:
    """The dashboard's Alerts view for this alert ("" without EXTERNAL_URL)."""
    base = external_url()
    return f"{base}/alerts?id={notice.alert_id}" if base else ""


def _group_labels(notice: AlertNotice) -> dict[str, str]:
    labels = notice.labels()
    return {name: labels[name] for name in ("alertname", "cluster", "member") if name in labels}


def group_key(notice: AlertNotice, receiver: str) -> str:
    """Like Alertmanager's `{}:{alertname="…", …}`: stable per alert and receiver."""
    pairs = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(_group_labels(notice).items()))
    return f"{{}}/{{receiver={json.dumps(receiver)}}}:{{{pairs}}}"


def webhook_payload(notice: AlertNotice, *, receiver: str) -> dict:
    """Alertmanager's webhook payload (version 4) carrying this one alert."""
    labels = notice.labels()
    annotations = notice.annotations()
    resolved = notice.status == "resolved"
    return {
        "version": "4",
        "groupKey": group_key(notice, receiver),
        "truncatedAlerts": 0,
        "status": notice.status,
        "receiver": receiver,
        "groupLabels": _group_labels(notice),
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url(),
        "alerts": [
            {
                "status": notice.status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(notice.starts_at),
                "endsAt": rfc3339(notice.ends_at if resolved else None),
                "generatorURL": alert_link(notice),
                "fingerprint": notice.fingerprint,
            }
        ],
    }


def headline(notice: AlertNotice) -> str:
    """`[FIRING:critical] member_down on prod (member 123): summary`."""
    where = notice.cluster_name or notice.cluster_id
    if notice.member_id:
        where += f" (member {notice.member_id})"
    return f"[{notice.status.upper()}:{notice.severity}] {notice.rule} on {where}: {notice.summary}"


def _values_text(notice: AlertNotice) -> str:
    return ", ".join(f"{name}={value}" for name, value in sorted(notice.values.items()))


def slack_payload(notice: AlertNotice) -> dict:
    """Slack's incoming-webhook message: `text` (the fallback every clone reads) and blocks."""
    details = [notice.description] if notice.description else []
    if notice.values:
        details.append(f"Values: {_values_text(notice)}")
    links = [
        f"<{url}|{label}>"
        for url, label in ((notice.runbook_url, "Runbook"), (alert_link(notice), "Alert"))
        if url
    ]
    if links:
        details.append(" · ".join(links))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline(notice)}*"}}]
    if details:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)[:2900]}}
        )
    return {"text": headline(notice), "blocks": blocks}


def alertmanager_alerts(notice: AlertNotice, *, repeat_seconds: int, now: float | None = None):
    """`[postableAlert]` for Alertmanager's `POST /api/v2/alerts`.

    A firing alert's `endsAt` lies four repeat intervals ahead (as Prometheus does with its
    re-send delay): we re-send it every repeat interval while it fires, and should we stop
    (etcdmonitor down), Alertmanager resolves it by itself instead of keeping it forever. A
    resolved alert carries its real end, which tells Alertmanager it is resolved.
    """
    now = time.time() if now is None else now
    resolved = notice.status == "resolved"
    ends_at = (notice.ends_at or now) if resolved else now + 4 * repeat_seconds
    alert = {
        "labels": notice.labels(),
        "annotations": notice.annotations(),
        "startsAt": rfc3339(notice.starts_at or now),
        "endsAt": rfc3339(ends_at),
    }
    link = alert_link(notice)
    if link:
        alert["generatorURL"] = link
    return [alert]


def email_message(notice: AlertNotice) -> tuple[str, str]:
    """`(subject, plain-text body)`."""
    lines = [headline(notice), ""]
    if notice.description:
        lines += [notice.description, ""]
    lines += [
        f"Rule:      {notice.rule}",
        f"Severity:  {notice.severity}",
        f"Status:    {notice.status}",
        f"Cluster:   {notice.cluster_name or notice.cluster_id} ({notice.cluster_id})",
    ]
    if notice.member_id:
        lines.append(f"Member:    {notice.member_id}")
    lines.append(f"Started:   {rfc3339(notice.starts_at)}")
    if notice.status == "resolved":
        lines.append(f"Ended:     {rfc3339(notice.ends_at)}")
    if notice.values:
        lines.append(f"Values:    {_values_text(notice)}")
    if notice.runbook_url:
        lines.append(f"Runbook:   {notice.runbook_url}")
    link = alert_link(notice)
    if link:
        lines.append(f"Alert:     {link}")
    return headline(notice)[:250], "\n".join(lines) + "\n"
