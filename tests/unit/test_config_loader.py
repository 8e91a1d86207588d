"""The config loader: search order, line-accurate errors, playbook directories, config init."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediate.config.loader import (
    find_config_file,
    load_command_playbook,
    load_settings,
    render_default_config,
    settings_schema,
)
from remediate.config.models import Settings
from remediate.errors import ConfigError, ConfigErrors

PLAYBOOK = """\
name: restart-nginx
description: restart the web server
parameters:
  unit: {type: string, pattern: "^[a-z-]+$", default: nginx}
steps:
  - name: restart
    argv: [systemctl, restart, "{unit}"]
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[ConfigError]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    error = caught.value
    return error.errors if isinstance(error, ConfigErrors) else [error]


# --- finding the file -----------------------------------------------------------------


def test_no_file_anywhere_means_the_built_in_defaults(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path / "home")}
    assert find_config_file(None, environ=environ, cwd=tmp_path) is None
    assert load_settings(None) == Settings()
    assert len(load_settings(None).routes) == 9


def test_an_explicit_config_path_wins_over_everything_else(tmp_path: Path) -> None:
    explicit = write(tmp_path / "mine.yml", "")
    write(tmp_path / "env.yml", "")
    write(tmp_path / "remediate.yml", "")
    environ = {"REMEDIATE_CONFIG": str(tmp_path / "env.yml"), "HOME": str(tmp_path)}
    assert find_config_file(explicit, environ=environ, cwd=tmp_path) == explicit
    assert find_config_file("mine.yml", environ=environ, cwd=tmp_path) == explicit


def test_an_explicit_config_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        find_config_file(tmp_path / "missing.yml", environ={}, cwd=tmp_path)
    assert caught.value.reason == "no such file"
    assert caught.value.file == str(tmp_path / "missing.yml")


def test_remediate_config_comes_before_the_file_in_the_working_directory(
    tmp_path: Path,
) -> None:
    from_env = write(tmp_path / "env.yml", "")
    write(tmp_path / "remediate.yml", "")
    environ = {"REMEDIATE_CONFIG": str(from_env), "HOME": str(tmp_path)}
    assert find_config_file(None, environ=environ, cwd=tmp_path) == from_env


def test_a_remediate_config_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "remediate.yml", "")
    environ = {"REMEDIATE_CONFIG": str(tmp_path / "gone.yml")}
    with pytest.raises(ConfigError, match="no such file"):
        find_config_file(None, environ=environ, cwd=tmp_path)


def test_the_working_directory_file_comes_before_the_xdg_one(tmp_path: Path) -> None:
    local = write(tmp_path / "work" / "remediate.yml", "")
    write(tmp_path / "xdg" / "remediate" / "remediate.yml", "")
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert find_config_file(None, environ=environ, cwd=tmp_path / "work") == local


def test_the_xdg_config_home_file_is_found_last(tmp_path: Path) -> None:
    xdg = write(tmp_path / "xdg" / "remediate" / "remediate.yml", "")
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert find_config_file(None, environ=environ, cwd=tmp_path) == xdg


def test_xdg_config_home_defaults_to_dot_config_in_the_home_directory(tmp_path: Path) -> None:
    config = write(tmp_path / "home" / ".config" / "remediate" / "remediate.yml", "")
    environ = {"HOME": str(tmp_path / "home")}
    assert find_config_file(None, environ=environ, cwd=tmp_path) == config


# --- loading ----------------------------------------------------------------------------


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path / "remediate.yml", "# nothing yet\n")) == Settings()


def test_values_in_the_file_replace_the_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path / "remediate.yml",
        "safety:\n  rate_limits:\n    cooldown_minutes: 2\nnotifications:\n  on: [success]\n",
    )
    settings = load_settings(path)
    assert settings.safety.rate_limits.cooldown_minutes == 2
    assert settings.safety.rate_limits.max_executions_per_hour == 5
    # `on` is a key, not the YAML 1.1 boolean True.
    assert settings.notifications.on == ("success",)


def test_an_unknown_key_names_file_line_and_suggests_the_close_field(tmp_path: Path) -> None:
    path = write(tmp_path / "remediate.yml", "server:\n  port: 9000\nsaftey:\n  x: 1\n")
    [error] = errors_of(path)
    assert (error.file, error.line, error.field) == (str(path), 3, "saftey")
    assert "unknown key" in error.reason
    assert "did you mean: safety" in error.reason
    assert error.message.startswith(f"{path}:3: saftey: unknown key")


def test_an_unknown_nested_key_suggests_the_field_of_its_own_section(tmp_path: Path) -> None:
    text = (
        "safety:\n"
        "  confidence_threshold: 80\n"
        "  rate_limits:\n"
        "    cooldown_minutes: 10\n"
        "    max_execution_per_hour: 4\n"
    )
    path = write(tmp_path / "remediate.yml", text)
    [error] = errors_of(path)
    assert error.line == 5
    assert error.field == "safety.rate_limits.max_execution_per_hour"
    assert "did you mean: max_executions_per_hour" in error.reason


def test_an_unknown_key_in_a_dict_of_models_suggests_that_models_fields(
    tmp_path: Path,
) -> None:
    text = PLAYBOOK.replace("default: nginx}", "default: nginx, requird: true}")
    path = write(tmp_path / "p.yml", text)
    with pytest.raises(ConfigErrors) as caught:
        load_command_playbook(path)
    [error] = caught.value.errors
    assert (error.line, error.field) == (4, "parameters.unit.requird")
    assert "did you mean: required?" in error.reason


def test_a_wrong_type_in_a_list_item_gives_its_line_and_dotted_field(tmp_path: Path) -> None:
    text = (
        "routes:\n"
        "  - alert: DiskFull\n"
        "    playbook: disk-cleanup\n"
        "  - alert: Down\n"
        "    playbook: service-restart\n"
        "    confidence: high\n"
    )
    path = write(tmp_path / "remediate.yml", text)
    [error] = errors_of(path)
    assert (error.line, error.field) == (6, "routes[1].confidence")
    assert "valid number" in error.reason


def test_a_missing_field_points_at_its_list_item(tmp_path: Path) -> None:
    path = write(tmp_path / "remediate.yml", "routes:\n  - alert: A\n  - playbook: disk-cleanup\n")
    [error] = errors_of(path)
    assert (error.line, error.field, error.reason) == (3, "routes[1].alert", "Field required")


def test_the_errors_of_a_unions_members_become_one_error(tmp_path: Path) -> None:
    text = "chains:\n  - name: c\n    playbooks:\n      - name: a\n        parameters: {k: [1]}\n"
    path = write(tmp_path / "remediate.yml", text)
    [error] = errors_of(path)
    assert (error.line, error.field) == (5, "chains[0].playbooks[0].parameters.k")
    assert "valid string" in error.reason
    assert "valid boolean" in error.reason


def test_a_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "remediate.yml", "server:\n  port: 1\n bind: [x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.file == str(path)
    assert caught.value.line == 3
    assert "invalid YAML" in caught.value.reason


def test_a_key_given_twice_is_an_error_instead_of_the_last_one_silently_winning(
    tmp_path: Path,
) -> None:
    text = "safety:\n  idempotency: {window_minutes: 1}\n  idempotency: {window_minutes: 2}\n"
    [error] = errors_of(write(tmp_path / "remediate.yml", text))
    assert (error.line, error.field) == (3, "safety.idempotency")
    assert error.reason == "duplicate key (first at line 2)"


def test_a_top_level_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "remediate.yml", "# routes\n- alert: A\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert (caught.value.file, caught.value.line) == (str(path), 2)
    assert "mapping" in caught.value.reason


def test_two_errors_are_reported_together_one_per_line(tmp_path: Path) -> None:
    text = "server:\n  prot: 1\nsafety:\n  confidence_threshold: 200\n"
    path = write(tmp_path / "remediate.yml", text)
    with pytest.raises(ConfigErrors) as caught:
        load_settings(path)
    assert [(e.line, e.field) for e in caught.value.errors] == [
        (2, "server.prot"),
        (4, "safety.confidence_threshold"),
    ]
    lines = caught.value.message.splitlines()
    assert lines[0].startswith(f"{path}:2: server.prot: unknown key")
    assert lines[1].startswith(f"{path}:4: safety.confidence_threshold: ")


def test_a_relative_state_directory_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path / "etc" / "remediate.yml", "state:\n  directory: state\n")
    assert load_settings(path).state.directory == tmp_path / "etc" / "state"


def test_an_absolute_state_directory_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "etc" / "remediate.yml", f"state:\n  directory: {tmp_path}/s\n")
    assert load_settings(path).state.directory == tmp_path / "s"


# --- playbook directories ---------------------------------------------------------------


def test_command_playbooks_in_a_directory_are_added_to_the_settings(tmp_path: Path) -> None:
    write(tmp_path / "playbooks" / "restart-nginx.yml", PLAYBOOK)
    path = write(tmp_path / "remediate.yml", "playbooks:\n  directories: [playbooks]\n")
    settings = load_settings(path)
    assert settings.playbooks.directories == (tmp_path / "playbooks",)
    assert [playbook.name for playbook in settings.playbooks.commands] == ["restart-nginx"]
    assert settings.playbooks.commands[0].steps[0].argv == ("systemctl", "restart", "{unit}")


def test_an_invalid_playbook_in_a_directory_is_reported_with_its_own_file_and_line(
    tmp_path: Path,
) -> None:
    write(tmp_path / "playbooks" / "a-good.yml", PLAYBOOK)
    bad = write(
        tmp_path / "playbooks" / "b-bad.yaml",
        "name: broken\nsteps:\n  - name: go\n    argv: [/bin/true]\n    timeout: soon\n",
    )
    path = write(tmp_path / "remediate.yml", "playbooks:\n  directories:\n    - playbooks\n")
    [error] = errors_of(path)
    assert (error.file, error.line, error.field) == (str(bad), 5, "steps[0].timeout")
    assert error.message.startswith(f"{bad}:5: steps[0].timeout: ")


def test_a_missing_playbook_directory_names_the_config_file_line_and_field(
    tmp_path: Path,
) -> None:
    text = "playbooks:\n  directories:\n    - here\n    - nowhere\n"
    write(tmp_path / "here" / "p.yml", PLAYBOOK)
    path = write(tmp_path / "remediate.yml", text)
    [error] = errors_of(path)
    assert (error.file, error.line, error.field) == (str(path), 4, "playbooks.directories[1]")
    assert "no such directory" in error.reason


# --- config init and schema -------------------------------------------------------------


def test_the_rendered_default_config_loads_back_to_the_built_in_defaults(
    tmp_path: Path,
) -> None:
    text = render_default_config()
    assert "token:" in text
    assert all(line.lstrip().startswith("#") for line in text.splitlines() if "token:" in line)
    assert "max_executions_per_hour: 5" in text
    assert load_settings(write(tmp_path / "remediate.yml", text)) == Settings()


def test_the_schema_describes_the_sections_for_editors() -> None:
    schema = settings_schema()
    assert "safety" in schema["properties"]
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["title"]
