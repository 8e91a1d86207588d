"""Built-in defaults: the seed's nine routes, its three example chains and its schedules.

Six routes remediate, three are investigation only (playbook None, confidence 0):
memory and swap pressure need a human (a full zram swap is normal), and so do
security events.
"""

from __future__ import annotations

from typing import Any

_ROUTES: list[dict[str, Any]] = [
    {
        "alert": "SystemDiskSpaceCritical",
        "playbook": "disk-cleanup",
        "confidence": 95,
        "priority": "high",
        "description": "non-destructive cleanup, proven effective",
    },
    {
        "alert": "SystemDiskSpaceWarning",
        "playbook": "disk-cleanup",
        "confidence": 85,
        "priority": "medium",
    },
    {
        "alert": "BtrfsPoolSpaceWarning",
        "playbook": "disk-cleanup",
        "confidence": 80,
        "priority": "medium",
    },
    {
        "alert": "ContainerNotRunning",
        "playbook": "self-healing-restart",
        "confidence": 90,
        "priority": "high",
        "parameters": {"service": "{{.Labels.name}}"},
    },
    {
        "alert": "ContainerMemoryPressure",
        "playbook": "service-restart",
        "confidence": 75,
        "priority": "medium",
        "requires_confirmation": True,
        "parameters": {"service": "{{.Labels.name}}"},
    },
    {
        "alert": "CrowdSecDown",
        "playbook": "self-healing-restart",
        "confidence": 95,
        "priority": "critical",
        "parameters": {"service": "crowdsec"},
        "description": "security monitoring must be up",
    },
    {
        "alert": "MemoryPressureHigh",
        "playbook": None,
        "confidence": 0,
        "priority": "high",
        "description": "investigation only: needs a root cause, not cache clearing",
    },
    {
        "alert": "SwapThrashing",
        "playbook": None,
        "confidence": 0,
        "priority": "high",
        "description": "investigation only: a full zram swap is normal",
    },
    {
        "alert": "CrowdSecBanSpike",
        "playbook": None,
        "confidence": 0,
        "priority": "high",
        "description": "investigation only: security events need human analysis",
    },
]

_CHAINS: list[dict[str, Any]] = [
    {
        "name": "full-recovery",
        "description": "Complete system recovery sequence",
        "risk_level": "high",
        "requires_confirmation": True,
        "playbooks": [
            {"name": "disk-cleanup", "timeout": 300},
            {"name": "resource-pressure", "timeout": 180, "condition": "memory_available < 20%"},
            {
                "name": "self-healing-restart",
                "parameters": {"service": "jellyfin"},
                "timeout": 120,
                "on_failure": "skip",
            },
            {
                "name": "drift-reconciliation",
                "parameters": {"service": "jellyfin"},
                "timeout": 300,
                "on_failure": "abort",
            },
        ],
        "strategy": "continue-on-error",
        "max_duration": 900,
    },
    {
        "name": "predictive-preemption",
        "description": "Forecast, then clean up ahead of a critical forecast",
        "risk_level": "low",
        "playbooks": [
            {"name": "predictive-maintenance", "timeout": 120},
            {
                "name": "disk-cleanup",
                "timeout": 300,
                "condition": 'prediction.severity == "critical"',
            },
            {"name": "database-maintenance", "timeout": 600},
        ],
        "strategy": "stop-on-failure",
        "max_duration": 1200,
    },
    {
        "name": "database-health",
        "description": "Database maintenance, then restart the database service",
        "risk_level": "medium",
        "requires_confirmation": True,
        "playbooks": [
            {"name": "database-maintenance", "timeout": 600},
            {
                "name": "self-healing-restart",
                "parameters": {"service": "postgres-immich"},
                "timeout": 120,
            },
        ],
        "strategy": "rollback-on-failure",
        "max_duration": 900,
    },
]

_SCHEDULES: dict[str, Any] = {
    "runner": "systemd",
    "items": [
        {
            "name": "database-maintenance",
            "playbook": "database-maintenance",
            "calendar": "Sun *-*-* 03:00:00",
            "confirmed": True,
        },
        {
            "name": "predictive-maintenance-check",
            "playbook": "predictive-maintenance",
            "calendar": "*-*-* 06:00:00",
        },
        {"name": "autonomous-operations", "task": "observe", "calendar": "*-*-* 06:30:00"},
        {"name": "monthly-report", "task": "monthly-report", "calendar": "*-*-01 07:00:00"},
    ],
}


def _build() -> dict[str, Any]:
    from remediate.config.models import Chain, Route, Schedules

    return {
        "routes": tuple(Route.model_validate(item) for item in _ROUTES),
        "chains": tuple(Chain.model_validate(item) for item in _CHAINS),
        "schedules": Schedules.model_validate(_SCHEDULES),
    }


class _Lazy(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        self.update(_build())
        return dict.__getitem__(self, key)


DEFAULTS: dict[str, Any] = _Lazy()

# Raw forms, for `remediate config init` (which writes them out commented).
RAW = {"routes": _ROUTES, "chains": _CHAINS, "schedules": _SCHEDULES}
