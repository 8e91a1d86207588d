"""The one error tree of remediate; the CLI maps it to exit codes in one place.

    RemediateError                 exit 1 unless a subclass says otherwise
    ├── UsageError                 exit 2: bad command line, unknown playbook, bad parameter
    │   ├── UnknownPlaybookError
    │   └── ParameterError
    ├── ConfigError                exit 2: a config file that does not validate (file, line, field)
    ├── StoreError                 exit 1: the store is locked, full or unreachable (retryable)
    ├── RefusedError               exit 3: the gate blocked the request or it needs confirmation
    └── PlaybookFailedError        exit 1: the playbook ran and failed, timed out or was interrupted

Exit codes follow the CLI contract: 0 done, 1 playbook failed, 2 usage or config
error, 3 refused by the gate or needs confirmation.
"""

from __future__ import annotations

from collections.abc import Iterable


class RemediateError(Exception):
    exit_code: int = 1
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(RemediateError):
    exit_code = 2


def close_matches(word: str, candidates: Iterable[str]) -> str:
    """Return a ' (did you mean: a, b?)' suffix, or '' when nothing is close."""
    import difflib  # only when there is an error to explain: kept off the server's footprint

    matches = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""


class UnknownPlaybookError(UsageError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown playbook {name!r}{close_matches(name, known)}")
        self.name = name


class ParameterError(UsageError):
    def __init__(self, playbook: str, parameter: str, reason: str) -> None:
        super().__init__(f"playbook {playbook!r}: parameter {parameter!r}: {reason}")
        self.playbook = playbook
        self.parameter = parameter
        self.reason = reason


class ConfigError(RemediateError):
    """A configuration problem, located as precisely as we can: file, line, field path."""

    exit_code = 2

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.field = field
        where = file or "<config>"
        if line is not None:
            where += f":{line}"
        message = f"{where}: {field}: {reason}" if field else f"{where}: {reason}"
        super().__init__(message)


class ConfigErrors(ConfigError):
    """Several config problems at once; the message lists every one, one per line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        RemediateError.__init__(self, "\n".join(error.message for error in errors))
        self.reason = errors[0].reason
        self.file = errors[0].file
        self.line = errors[0].line
        self.field = errors[0].field


class StoreError(RemediateError):
    retryable = True


class RefusedError(RemediateError):
    exit_code = 3


class PlaybookFailedError(RemediateError):
    exit_code = 1
