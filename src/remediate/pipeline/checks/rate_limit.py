"""Sliding-hour limits: global, per alert name, a cooldown per playbook, and configured rules.

10:00 exec · 10:05 blocked (cooldown) · 10:20 exec · 10:40 exec · 11:00 blocked
(per-alert: 3 in the hour [10:00, 11:00], both ends included).
"""

from remediate.pipeline.checks import CheckInput
from remediate.pipeline.request import Verdict

name = "rate_limit"
HOUR = 3600.0


def rule_keys(given: CheckInput) -> dict[str, str]:
    """The key of each configured rule for this request: the same values are stored on admit."""
    request = given.request
    labels = request.alert.labels if request.alert else {}
    keys: dict[str, str] = {}
    for rule in given.settings.safety.rate_limits.rules:
        parts = []
        for part in rule.key:
            if part == "playbook":
                parts.append(request.playbook)
            elif part == "alertname":
                parts.append(request.alert.name if request.alert else "")
            elif part == "source":
                parts.append(request.source)
            elif part == "target":
                parts.append(given.target)
            else:
                parts.append(labels.get(part.removeprefix("labels."), ""))
        keys[rule.name] = "\x1f".join(parts)
    return keys


def check(given: CheckInput) -> Verdict:
    if given.request.forced:
        return Verdict.allow()
    limits = given.settings.safety.rate_limits
    view, now = given.view, given.now
    last = view.last_admitted(playbook=given.request.playbook)
    cooldown = limits.cooldown_minutes * 60
    if last is not None and now - last < cooldown:
        wait = (cooldown - (now - last)) / 60
        return Verdict.block(
            name,
            f"cooldown: {given.request.playbook} ran {(now - last) / 60:.0f} min ago "
            f"(cooldown {limits.cooldown_minutes:g} min, {wait:.0f} min left)",
        )
    since = now - HOUR
    total = view.count_admitted(since=since)
    if total >= limits.max_executions_per_hour:
        return Verdict.block(
            name,
            f"global limit: {total} executions in the last hour "
            f"(max {limits.max_executions_per_hour})",
        )
    alert = given.request.alert
    if alert is not None:
        count = view.count_admitted(since=since, alertname=alert.name)
        if count >= limits.max_executions_per_alert:
            return Verdict.block(
                name,
                f"per-alert limit: {alert.name} executed {count} times in the last hour "
                f"(max {limits.max_executions_per_alert})",
            )
    keys = rule_keys(given)
    for rule in limits.rules:
        count = view.count_rule(
            rule=rule.name, key=keys[rule.name], since=now - rule.window_minutes * 60
        )
        if count >= rule.max_executions:
            return Verdict.block(
                name,
                f"rule {rule.name}: {count} executions in {rule.window_minutes:g} min "
                f"for {keys[rule.name].replace(chr(31), ' ')!r} (max {rule.max_executions})",
            )
    return Verdict.allow()
