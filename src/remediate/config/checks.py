"""Cross-references the models cannot check alone: do routes, chains and schedules name
playbooks that exist? Reported as warnings by `config check` (errors with --strict)."""

from __future__ import annotations

from remediate.config.models import Settings
from remediate.errors import close_matches


def cross_check(settings: Settings) -> list[str]:
    from remediate.playbooks.registry import Registry

    known = Registry.from_settings(settings).names()
    chains = {chain.name for chain in settings.chains}
    services = {service.name for service in settings.services}
    warnings: list[str] = []

    def playbook(where: str, name: str) -> None:
        if name not in known:
            warnings.append(
                f"{where}: playbook {name!r} is not installed{close_matches(name, known)}; "
                "requests for it are blocked with that reason"
            )

    for index, route in enumerate(settings.routes):
        if route.playbook:
            playbook(f"routes[{index}] ({route.alert})", route.playbook)
        if route.chain and route.chain not in chains:
            warnings.append(f"routes[{index}] ({route.alert}): no chain {route.chain!r}")
    for chain in settings.chains:
        for position, step in enumerate(chain.playbooks):
            playbook(f"chains.{chain.name}.playbooks[{position}]", step.name)
    for index, schedule in enumerate(settings.schedules.items):
        if schedule.playbook:
            playbook(f"schedules.items[{index}] ({schedule.name})", schedule.playbook)
        if schedule.chain and schedule.chain not in chains:
            warnings.append(f"schedules.items[{index}]: no chain {schedule.chain!r}")
    for service in settings.services:
        for dependency in service.depends_on:
            if dependency not in services:
                warnings.append(
                    f"services.{service.name}.depends_on: {dependency!r} is not a declared "
                    f"service{close_matches(dependency, services)}"
                )
    return warnings
