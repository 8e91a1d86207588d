"""Which playbooks exist: the built-in ones and the command playbooks from config."""

from __future__ import annotations

from collections.abc import Iterator

from remediate.config.models import Settings
from remediate.errors import UnknownPlaybookError
from remediate.playbooks.base import Playbook


class Registry:
    def __init__(self, playbooks: list[Playbook]) -> None:
        self._playbooks = {playbook.name: playbook for playbook in playbooks}

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        from remediate.playbooks.command import CommandPlaybookRunner

        playbooks: list[Playbook] = list(builtin_playbooks(settings))
        builtin = {playbook.name for playbook in playbooks}
        for spec in settings.playbooks.commands:
            if spec.name in builtin:
                from remediate.errors import ConfigError

                raise ConfigError(
                    f"command playbook {spec.name!r} has the name of a built-in playbook",
                    field="playbooks.commands",
                )
            playbooks.append(CommandPlaybookRunner(spec))
        return cls(playbooks)

    def add(self, playbook: Playbook) -> None:
        self._playbooks[playbook.name] = playbook

    def get(self, name: str) -> Playbook:
        try:
            return self._playbooks[name]
        except KeyError:
            raise UnknownPlaybookError(name, self._playbooks) from None

    def __contains__(self, name: object) -> bool:
        return name in self._playbooks

    def __iter__(self) -> Iterator[Playbook]:
        return iter(sorted(self._playbooks.values(), key=lambda playbook: playbook.name))

    def names(self) -> list[str]:
        return sorted(self._playbooks)


# name -> "module:Class"; each module is imported only when the registry is built.
BUILTINS: dict[str, str] = {
    "disk-cleanup": "remediate.playbooks.disk_cleanup:DiskCleanup",
    "self-healing-restart": "remediate.playbooks.self_healing:SelfHealingRestart",
    "service-restart": "remediate.playbooks.service_restart:ServiceRestart",
    "resource-pressure": "remediate.playbooks.resource_pressure:ResourcePressure",
    "database-maintenance": "remediate.playbooks.database:DatabaseMaintenance",
    "drift-reconciliation": "remediate.playbooks.drift:DriftReconciliation",
    "predictive-maintenance": "remediate.playbooks.predictive:PredictiveMaintenance",
}


def builtin_playbooks(settings: Settings) -> list[Playbook]:
    """The built-in playbooks, each built from its settings (`playbooks.settings.NAME`)."""
    import importlib

    playbooks: list[Playbook] = []
    for target in BUILTINS.values():
        module_name, _, class_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # not written yet: the issue that adds it lands later
                continue
            raise
        playbooks.append(getattr(module, class_name).from_settings(settings))
    return playbooks
