"""The condition language of chain steps: a tiny grammar over facts the chain can observe.

    memory_available < 20%
    disk_free{mount="/srv"} < 15% and not steps.disk-cleanup.success
    prediction.severity == "critical" or swap_used > 2GiB

A tokenizer and a recursive-descent parser build a small tree that is checked
against the fact registry (unknown facts, wrong comparisons and bad syntax are
errors with a column) and evaluated without `eval`. Grammar:

    expression := or
    or         := and (("or" | "||") and)*
    and        := not (("and" | "&&") not)*
    not        := ("not" | "!") not | primary
    primary    := "(" expression ")" | comparison
    comparison := operand (("<" | "<=" | ">" | ">=" | "==" | "!=") operand)?
    operand    := fact | NUMBER | NUMBER "%" | NUMBER SIZE | STRING | "true" | "false"
    fact       := NAME ("{" NAME "=" STRING ("," NAME "=" STRING)* "}")?

A comparison that reads an unknown fact (no forecast yet, a step that has not
run, a mount that cannot be read) is false, whichever the operator.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from remediate.errors import close_matches

__all__ = [
    "FACTS",
    "STEP_ATTRIBUTES",
    "Condition",
    "ConditionError",
    "Evaluation",
    "Fact",
    "FactSource",
    "Quantity",
    "parse",
    "validate",
]

Kind = Literal["quantity", "number", "string", "boolean"]


@dataclass(frozen=True)
class Quantity:
    """A figure with its whole: bytes available of bytes total. Compared as % or as bytes."""

    amount: float
    total: float

    @property
    def percent(self) -> float | None:
        return self.amount / self.total * 100 if self.total > 0 else None

    def describe(self) -> str:
        percent = self.percent
        share = f"{percent:.1f}% = " if percent is not None else ""
        return f"{share}{_size(self.amount)} of {_size(self.total)}"


@dataclass(frozen=True)
class FactSpec:
    kind: Kind
    description: str
    labels: Mapping[str, str] = field(default_factory=dict)  # label -> default value


FACTS: dict[str, FactSpec] = {
    "memory_available": FactSpec("quantity", "memory available to new processes (psutil)"),
    "memory_used": FactSpec("quantity", "memory in use: total minus available"),
    "swap_free": FactSpec("quantity", "free swap (unknown when there is no swap)"),
    "swap_used": FactSpec("quantity", "used swap (unknown when there is no swap)"),
    "disk_free": FactSpec(
        "quantity", "space available to unprivileged users on a mount", {"mount": "/"}
    ),
    "disk_used": FactSpec("quantity", "space used on a mount", {"mount": "/"}),
    "recent_failures": FactSpec("number", "executions that failed or timed out in the last hour"),
    "prediction.severity": FactSpec("string", "severity of the latest forecast"),
    "prediction.resource": FactSpec("string", "resource of the latest forecast"),
    "prediction.confidence": FactSpec("number", "confidence (0-100) of the latest forecast"),
}
# steps.NAME.ATTRIBUTE: the latest earlier step that ran playbook NAME in this run.
STEP_ATTRIBUTES: dict[str, FactSpec] = {
    "success": FactSpec("boolean", "the step succeeded"),
    "failed": FactSpec("boolean", "the step failed, timed out or was refused by the gate"),
    "skipped": FactSpec("boolean", "the step was skipped (its condition was false)"),
    "status": FactSpec("string", "the step's status: success, failure, skipped..."),
}


class ConditionError(ValueError):
    """A condition that does not parse or names what does not exist; says where."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.reason = message
        self.text = text
        self.position = position
        super().__init__(f"{message} at column {position + 1} of {text!r}")


# --- tokens -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?)(?P<unit>%|[KMGT]i?B|B(?![A-Za-z0-9_]))?
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<operator><=|>=|==|!=|<|>|&&|\|\||!|=)
  | (?P<punctuation>[(){},])
  | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
    """,
    re.VERBOSE,
)
_SIZE_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
_SIZE_UNITS.update({"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4})


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, operator, punctuation, name, end
    text: str
    position: int
    unit: str = ""


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConditionError(f"unexpected character {text[position]!r}", text, position)
        kind = match.lastgroup or ""
        if kind == "unit":  # the unit group closes last after a number
            kind = "number"
        if kind != "space":
            value = match.group("number") if kind == "number" else match.group(kind)
            tokens.append(Token(kind, value, position, match.group("unit") or ""))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """A fact as written: `disk_free{mount="/"}`, `steps.disk-cleanup.success`."""

    name: str  # registry key: "disk_free", "prediction.severity", "steps.success"
    labels: tuple[tuple[str, str], ...] = ()
    step: str | None = None
    position: int = 0

    @property
    def spec(self) -> FactSpec:
        if self.step is not None:
            return STEP_ATTRIBUTES[self.name.removeprefix("steps.")]
        return FACTS[self.name]

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, self.spec.labels.get(name, ""))

    def render(self) -> str:
        if self.step is not None:
            return f"steps.{self.step}.{self.name.removeprefix('steps.')}"
        if not self.labels:
            return self.name
        inner = ",".join(f'{key}="{value}"' for key, value in self.labels)
        return f"{self.name}{{{inner}}}"


@dataclass(frozen=True)
class Constant:
    value: float | str | bool
    unit: Literal["", "%", "bytes"] = ""
    position: int = 0

    def render(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return repr(self.value)
        if self.unit == "%":
            return f"{self.value:g}%"
        if self.unit == "bytes":
            return _size(self.value)
        return f"{self.value:g}"


@dataclass(frozen=True)
class Compare:
    operator: str
    fact: Fact
    literal: Constant | None  # None: a bare boolean fact


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class Junction:
    operator: Literal["and", "or"]
    items: tuple[Node, ...]


Node = Compare | Not | Junction

_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_ORDERING = ("<", "<=", ">", ">=")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def error(self, message: str, token: Token | None = None) -> ConditionError:
        token = token or self.peek()
        return ConditionError(message, self.text, token.position)

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, *texts: str) -> Token | None:
        token = self.peek()
        if token.kind in ("operator", "punctuation", "name") and token.text in texts:
            return self.take()
        return None

    def expect(self, text: str) -> Token:
        token = self.accept(text)
        if token is None:
            found = self.peek().text or "the end"
            raise self.error(f"expected {text!r}, found {found!r}")
        return token

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty condition")
        node = self.disjunction()
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.peek().text!r}")
        return node

    def disjunction(self) -> Node:
        items = [self.conjunction()]
        while self.accept("or", "||"):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Junction("or", tuple(items))

    def conjunction(self) -> Node:
        items = [self.negation()]
        while self.accept("and", "&&"):
            items.append(self.negation())
        return items[0] if len(items) == 1 else Junction("and", tuple(items))

    def negation(self) -> Node:
        if self.accept("not", "!"):
            return Not(self.negation())
        if self.accept("("):
            node = self.disjunction()
            self.expect(")")
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        token = self.peek()
        if token.kind == "operator" and token.text in _FLIPPED:
            operator = self.take().text
            right = self.operand()
            if isinstance(left, Constant) and isinstance(right, Fact):
                left, right, operator = right, left, _FLIPPED[operator]
            if not isinstance(left, Fact):
                raise self.error("compare a fact with a value", token)
            if not isinstance(right, Constant):
                raise ConditionError(
                    "compare a fact with a value, not with another fact", self.text, right.position
                )
            return _checked(Compare(operator, left, right), self.text, token.position)
        if token.kind == "operator" and token.text == "=":
            raise self.error("use == to compare")
        if isinstance(left, Constant):
            raise ConditionError("a value alone is not a condition", self.text, left.position)
        if left.spec.kind != "boolean":
            raise ConditionError(
                f"{left.render()} is a {left.spec.kind}: compare it, e.g. "
                f"{left.render()} {_example(left.spec.kind)}",
                self.text,
                left.position,
            )
        return Compare("==", left, None)

    def operand(self) -> Fact | Constant:
        token = self.take()
        if token.kind == "number":
            number = float(token.text)
            if token.unit == "%":
                return Constant(number, "%", token.position)
            if token.unit:
                return Constant(number * _SIZE_UNITS[token.unit], "bytes", token.position)
            return Constant(number, "", token.position)
        if token.kind == "string":
            return Constant(_unquote(token.text), "", token.position)
        if token.kind == "name" and token.text in ("true", "false"):
            return Constant(token.text == "true", "", token.position)
        if token.kind == "name" and token.text not in ("and", "or", "not"):
            return self.fact(token)
        found = token.text or "the end"
        raise ConditionError(
            f"expected a fact or a value, found {found!r}", self.text, token.position
        )

    def fact(self, token: Token) -> Fact:
        name = token.text
        labels: list[tuple[str, str]] = []
        if self.accept("{"):
            while True:
                key = self.take()
                if key.kind != "name":
                    raise self.error("expected a label name", key)
                self.expect("=")
                value = self.take()
                if value.kind != "string":
                    raise self.error('a label value is a quoted string: mount="/"', value)
                labels.append((key.text, _unquote(value.text)))
                if self.accept("}"):
                    break
                self.expect(",")
        return _resolve(name, tuple(labels), self.text, token.position)


def _resolve(name: str, labels: tuple[tuple[str, str], ...], text: str, position: int) -> Fact:
    if name.startswith("steps."):
        step, _, attribute = name.removeprefix("steps.").rpartition(".")
        if not step or attribute not in STEP_ATTRIBUTES:
            raise ConditionError(
                f"a step fact is steps.PLAYBOOK.ATTRIBUTE with ATTRIBUTE one of "
                f"{', '.join(STEP_ATTRIBUTES)}{close_matches(attribute, STEP_ATTRIBUTES)}",
                text,
                position,
            )
        if labels:
            raise ConditionError("a step fact takes no labels", text, position)
        return Fact(f"steps.{attribute}", (), step, position)
    spec = FACTS.get(name)
    if spec is None:
        hint = close_matches(name, FACTS) or f" (facts: {', '.join(FACTS)}, steps.NAME.success)"
        raise ConditionError(f"unknown fact {name!r}{hint}", text, position)
    for key, value in labels:
        if key not in spec.labels:
            allowed = ", ".join(spec.labels) or "none"
            raise ConditionError(f"{name} has no label {key!r} (labels: {allowed})", text, position)
        if key == "mount" and not value.startswith("/"):
            raise ConditionError(f"mount must be an absolute path, not {value!r}", text, position)
    if len({key for key, _ in labels}) != len(labels):
        raise ConditionError(f"{name}: a label is given twice", text, position)
    return Fact(name, labels, None, position)


def _checked(compare: Compare, text: str, position: int) -> Compare:
    """Refuse comparisons that cannot mean anything: `memory_available == "x"`, `a < true`."""
    kind, literal, operator = compare.fact.spec.kind, compare.literal, compare.operator
    assert literal is not None
    name = compare.fact.render()
    if kind == "quantity":
        if isinstance(literal.value, str | bool) or literal.unit == "":
            raise ConditionError(
                f"compare {name} with a percentage (20%) or a size (2GiB)", text, position
            )
    elif kind == "number":
        if isinstance(literal.value, str | bool) or literal.unit:
            raise ConditionError(f"compare {name} with a plain number", text, position)
    elif kind == "string":
        if not isinstance(literal.value, str):
            raise ConditionError(f'compare {name} with a quoted string ("...")', text, position)
        if operator in _ORDERING:
            raise ConditionError(f"{name} is text: use == or !=", text, position)
    elif not isinstance(literal.value, bool):
        raise ConditionError(f"compare {name} with true or false", text, position)
    elif operator in _ORDERING:
        raise ConditionError(f"{name} is true or false: use == or !=", text, position)
    return compare


def _example(kind: Kind) -> str:
    return {"quantity": "< 20%", "number": "< 3", "string": '== "critical"', "boolean": ""}[kind]


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _size(amount: float) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if abs(amount) >= _SIZE_UNITS[unit]:
            return f"{amount / _SIZE_UNITS[unit]:.1f}{unit}"
    return f"{amount:.0f}B"


# --- evaluation ---------------------------------------------------------------------------


class FactSource(Protocol):
    """Where facts come from; None means the fact is unknown right now."""

    def value(self, fact: Fact) -> Quantity | float | str | bool | None: ...


@dataclass(frozen=True)
class Evaluation:
    """The outcome and the facts it read, as text for people: {"memory_available": "63.2%..."}."""

    holds: bool
    observed: Mapping[str, str]

    def explain(self) -> str:
        facts = ", ".join(f"{name} = {value}" for name, value in self.observed.items())
        return f"{'true' if self.holds else 'false'} ({facts})" if facts else str(self.holds)


@dataclass(frozen=True)
class Condition:
    """A parsed, checked condition. `Condition.parse(text).evaluate(source)`."""

    text: str
    root: Node

    @classmethod
    def parse(cls, text: str) -> Condition:
        return cls(text, _Parser(text).parse())

    def facts(self) -> Iterator[Fact]:
        def walk(node: Node) -> Iterator[Fact]:
            if isinstance(node, Compare):
                yield node.fact
            elif isinstance(node, Not):
                yield from walk(node.item)
            else:
                for item in node.items:
                    yield from walk(item)

        return walk(self.root)

    def steps(self) -> set[str]:
        """The step names this condition reads (`steps.NAME.x`)."""
        return {fact.step for fact in self.facts() if fact.step is not None}

    def evaluate(self, source: FactSource) -> Evaluation:
        cache: dict[Fact, Quantity | float | str | bool | None] = {}
        observed: dict[str, str] = {}

        def read(fact: Fact) -> Quantity | float | str | bool | None:
            key = Fact(fact.name, fact.labels, fact.step)  # position does not matter
            if key not in cache:
                cache[key] = source.value(fact)
                observed[fact.render()] = _describe(cache[key])
            return cache[key]

        def holds(node: Node) -> bool:
            if isinstance(node, Compare):
                return _compare(node, read(node.fact))
            if isinstance(node, Not):
                return not holds(node.item)
            if node.operator == "and":
                return all(holds(item) for item in node.items)
            return any(holds(item) for item in node.items)

        return Evaluation(holds(self.root), observed)


def _describe(value: Quantity | float | str | bool | None) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, Quantity):
        return value.describe()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return f"{value:g}"
    return repr(value)


def _compare(node: Compare, value: Quantity | float | str | bool | None) -> bool:
    if value is None:
        return False  # unknown: every comparison is false (documented in docs/chains.md)
    literal = node.literal
    if literal is None:
        return value is True
    left: float | str | bool
    if isinstance(value, Quantity):
        if literal.unit == "%":
            percent = value.percent
            if percent is None:
                return False
            left = percent
        else:
            left = value.amount
    else:
        left = value
    right = literal.value
    operator = node.operator
    if operator == "==":
        return left == right
    if operator == "!=":
        return left != right
    if isinstance(left, str | bool) or isinstance(right, str | bool):
        return False  # refused at parse time; a source returning the wrong type is not true
    if operator == "<":
        return left < right
    if operator == "<=":
        return left <= right
    if operator == ">":
        return left > right
    return left >= right


def parse(text: str) -> Condition:
    """Parse and check a condition; raises ConditionError (a ValueError) naming the column."""
    return Condition.parse(text)


def validate(text: str, earlier_steps: Sequence[str] | None = None) -> None:
    """Raise ValueError when `text` does not parse, or reads a step not among `earlier_steps`."""
    condition = Condition.parse(text)
    if earlier_steps is None:
        return
    for fact in condition.facts():
        if fact.step is not None and fact.step not in earlier_steps:
            where = ", ".join(earlier_steps) or "none"
            raise ConditionError(
                f"no earlier step runs playbook {fact.step!r} (earlier steps: {where})"
                f"{close_matches(fact.step, earlier_steps)}",
                text,
                fact.position,
            )
