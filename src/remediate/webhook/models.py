"""Alertmanager's webhook payload (version 4), parsed at the boundary.

Unknown fields are ignored rather than refused: Alertmanager may add fields in
a later release, and a receiver that rejected them would drop real alerts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_MAX_LABELS = 256


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AlertPayload(_Model):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict, max_length=_MAX_LABELS)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=_MAX_LABELS)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field("", max_length=128)


class WebhookPayload(_Model):
    version: str = "4"
    groupKey: str = ""
    truncatedAlerts: int = Field(0, ge=0)
    status: Literal["firing", "resolved"] = "firing"
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    # Alertmanager's max_alerts should stay at or below this; one notification is one transaction.
    alerts: tuple[AlertPayload, ...] = Field(max_length=1000)
