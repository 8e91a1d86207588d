"""`remediate export rules`: Prometheus alerting rules about remediate itself.

Five alerts: consecutive playbook failures (one short of the breaker's
threshold), a circuit breaker open, the receiver down (its scrape target),
prediction accuracy low (the autonomous loop's own 60% breaker), and a playbook
whose last success is stale. `promtool check rules` and `promtool test rules`
(tests/fixtures/rules/remediate_test.yml) cover every one.

    text = render(settings, job="remediate")
"""

from __future__ import annotations

from typing import Any

import yaml

from remediate.config.models import Settings

ACCURACY_FLOOR = 0.6


def rules(
    settings: Settings, *, job: str = "remediate", stale_after_days: float = 7
) -> dict[str, Any]:
    """The rule file as data. `job` is the Prometheus scrape job of `remediate serve`."""
    failures = max(1, settings.safety.circuit_breaker.failure_threshold - 1)
    target = f'up{{job="{job}"}}'
    stale_seconds = int(stale_after_days * 86400)
    return {
        "groups": [
            {
                "name": "remediate",
                "rules": [
                    {
                        "alert": "RemediationPlaybookFailing",
                        "expr": f"remediation_circuit_breaker_consecutive_failures >= {failures}",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "{{ $labels.playbook }} failed {{ $value }} times in a row",
                            "description": (
                                "One more failure opens its circuit breaker; "
                                "see `remediate history --playbook {{ $labels.playbook }}`."
                            ),
                        },
                    },
                    {
                        "alert": "RemediationCircuitBreakerOpen",
                        "expr": "remediation_circuit_breaker_open == 1",
                        "for": "1m",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "circuit breaker of {{ $labels.playbook }} is open",
                            "description": (
                                "{{ $labels.playbook }} is not run automatically until "
                                "its trial run succeeds; see `remediate status`."
                            ),
                        },
                    },
                    {
                        "alert": "RemediationReceiverDown",
                        "expr": f"{target} == 0 or absent({target})",
                        "for": "5m",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "the remediate webhook receiver is down",
                            "description": (
                                f"Prometheus cannot scrape job {job}: alerts are not "
                                "remediated; check `systemctl --user status remediate`."
                            ),
                        },
                    },
                    {
                        "alert": "RemediationPredictionAccuracyLow",
                        "expr": f"remediation_predictive_accuracy < {ACCURACY_FLOOR}",
                        "for": "1h",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": (
                                "forecasts for {{ $labels.resource }} are "
                                "{{ $value | humanizePercentage }} accurate"
                            ),
                            "description": (
                                "Below 60% the autonomous loop stops acting on "
                                "forecasts; see `remediate report trends`."
                            ),
                        },
                    },
                    {
                        "alert": "RemediationLastSuccessStale",
                        "expr": (
                            "time() - remediation_playbook_last_success_timestamp "
                            f"> {stale_seconds}"
                        ),
                        "for": "1h",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": (
                                "{{ $labels.playbook }} has not succeeded for "
                                "{{ $value | humanizeDuration }}"
                            ),
                            "description": (
                                "A scheduled playbook that stopped succeeding leaves its "
                                "problem to grow; see `remediate report effectiveness`."
                            ),
                        },
                    },
                ],
            }
        ]
    }


def render(settings: Settings, *, job: str = "remediate", stale_after_days: float = 7) -> str:
    header = (
        "# Prometheus alerting rules for remediate (generated by `remediate export rules`).\n"
        "# Add the file to rule_files in prometheus.yml; check with `promtool check rules`.\n"
    )
    body = yaml.safe_dump(
        rules(settings, job=job, stale_after_days=stale_after_days),
        sort_keys=False,
        width=1000,
        allow_unicode=True,
    )
    return header + body
