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
        playbooks += [
            CommandPlaybookRunner(spec)
            for spec in settings.playbooks.commands
            if spec.name not in builtin
        ]
        return cls(playbooks)

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


def builtin_playbooks(settings: Settings) -> list[Playbook]:
    """The built-in playbooks; each module is imported only when the registry is built."""
    return []
