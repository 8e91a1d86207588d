"""Wiring: settings -> store, registry, pipeline, metrics. One place builds the object graph."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from remediate.clock import Clock, SystemClock
from remediate.config.models import Settings
from remediate.pipeline.pipeline import Pipeline
from remediate.playbooks.registry import Registry
from remediate.store import Store
from remediate.system.notify import Notifier

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from remediate.chains.executor import ChainRunner

log = logging.getLogger("remediate")


def open_store(settings: Settings) -> Store:
    """The settings' store, opened and brought to the newest schema."""
    return Store.open(
        settings.state.resolved_url(), busy_timeout=settings.state.busy_timeout_seconds
    )


@dataclass
class Runtime:
    settings: Settings
    store: Store
    registry: Registry
    clock: Clock
    config_path: Path | None = None
    _metrics: CollectorRegistry | None = field(default=None, repr=False)
    _pipeline: Pipeline | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        config_path: Path | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
        registry: Registry | None = None,
    ) -> Runtime:
        """The object graph; `store`, when given, is the settings' store, already open, and
        `registry`, when given, the settings' playbooks."""
        if store is None:
            store = open_store(settings)
        return cls(
            settings=settings,
            store=store,
            registry=Registry.from_settings(settings) if registry is None else registry,
            clock=clock or SystemClock(),
            config_path=config_path,
        )

    @property
    def metrics(self) -> CollectorRegistry:
        if self._metrics is None:
            from remediate.metrics import registry_for

            self._metrics = registry_for(self.store, self.settings, self.clock)
        return self._metrics

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(
                self.settings,
                self.store,
                self.registry,
                clock=self.clock,
                after_record=self.write_textfile,
                notify=Notifier(self.settings.notifications.urls),
            )
            self._register_chains(self._pipeline)
        return self._pipeline

    def _register_chains(self, pipeline: Pipeline) -> None:
        """Each chain becomes the playbook `chain:NAME`, so routes may name chains."""
        from remediate.chains.playbook import ChainPlaybook

        def runner() -> ChainRunner:
            from remediate.chains.executor import ChainRunner

            return ChainRunner(self.settings, self.store, self.registry, pipeline, clock=self.clock)

        for chain in self.settings.chains:
            self.registry.add(
                ChainPlaybook(chain, runner, grace=self.settings.safety.lease_grace_seconds)
            )

    def write_textfile(self) -> None:
        """Refresh the node-exporter textfile; a failure here never loses the record."""
        path = self.settings.textfile_path()
        if path is None:
            return
        from remediate.metrics import write_textfile

        try:
            write_textfile(self.metrics, path)
        except OSError as error:
            log.warning("could not write metrics textfile %s: %s", path, error)

    def close(self) -> None:
        self.store.close()
