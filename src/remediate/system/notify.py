"""Operator notifications through apprise URLs (Discord, Slack, ntfy, e-mail, ...).

Sent from a background thread so a slow chat service never holds up a
decision; apprise is imported only when a URL is configured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger("remediate.notify")

Sender = Callable[[Sequence[str], str, str], bool]


def apprise_sender(urls: Sequence[str], title: str, body: str) -> bool:
    import apprise

    notifier = apprise.Apprise()
    for url in urls:
        notifier.add(url)
    return bool(notifier.notify(title=title, body=body))


class Notifier:
    def __init__(
        self, urls: Sequence[str], *, sender: Sender = apprise_sender, background: bool = True
    ) -> None:
        self.urls = tuple(urls)
        self.sender = sender
        self.background = background

    def __call__(self, title: str, body: str) -> None:
        if not self.urls:
            return
        if self.background:
            threading.Thread(
                target=self._send, args=(title, body), name="remediate-notify", daemon=True
            ).start()
        else:
            self._send(title, body)

    def _send(self, title: str, body: str) -> None:
        try:
            if not self.sender(self.urls, title, body):
                log.warning("notification %r was not delivered to every URL", title)
        except Exception:  # a broken notifier must never break remediation
            log.exception("notification %r failed", title)


def escalation_message(
    *, decision_id: int, approval_id: int, playbook: str, alert: str | None, reason: str
) -> tuple[str, str]:
    title = f"remediate: approval needed for {playbook}"
    body = (
        f"{'Alert ' + alert + ': ' if alert else ''}{playbook} was escalated: {reason}.\n"
        f"Decision {decision_id}, approval {approval_id}.\n"
        f"Approve: remediate approve {approval_id}   Reject: remediate reject {approval_id}\n"
        f"or POST /approvals/{approval_id}/approve"
    )
    return title, body
