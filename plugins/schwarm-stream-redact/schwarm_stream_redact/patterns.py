"""The built-in patterns and the :class:`Redactor` that applies them to text.

Each pattern is a regular expression, optionally with a validator that must
accept a match before it is redacted (card numbers must pass the Luhn check,
so order numbers and timestamps are left alone).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["BUILTIN_PATTERNS", "Pattern", "Redactor", "luhn_valid"]


def luhn_valid(text: str) -> bool:
    """True for a digit string (spaces and dashes ignored) that passes the Luhn checksum."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class Pattern:
    """A named regular expression; ``validate`` (if any) must accept a match to redact it."""

    name: str
    regex: str
    validate: Callable[[str], bool] | None = None


#: The built-in patterns, by name. Order matters where two could match at the
#: same place: the more specific comes first (``anthropic_key`` before ``openai_key``).
BUILTIN_PATTERNS: dict[str, Pattern] = {
    p.name: p
    for p in (
        Pattern("anthropic_key", r"sk-ant-[A-Za-z0-9_\-]{20,}"),
        Pattern("openai_key", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
        Pattern("aws_access_key_id", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
        Pattern("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
        Pattern("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
        Pattern("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
        Pattern("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
        Pattern("email", r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"),
        Pattern("credit_card", r"\b\d(?:[ \-]?\d){12,18}\b", luhn_valid),
    )
}


class Redactor:
    """Finds and replaces every pattern in a text.

    ``replacement`` may contain ``{name}`` (the pattern's name).
    """

    def __init__(self, patterns: Iterable[Pattern], replacement: str = "[REDACTED:{name}]") -> None:
        self.patterns = list(patterns)
        if not self.patterns:
            raise ValueError("a Redactor needs at least one pattern")
        self.replacement = replacement
        # One alternation, one scan per text; group names map back to patterns.
        self._groups = {f"p{i}": p for i, p in enumerate(self.patterns)}
        self._regex = re.compile("|".join(f"(?P<{g}>{p.regex})" for g, p in self._groups.items()))

    def matches(self, text: str, start: int = 0) -> list[tuple[int, int, str]]:
        """``(start, end, pattern name)`` of every match to redact from ``start`` on, not overlapping.

        Text before ``start`` is context only: word boundaries (``\\b``) at ``start``
        look at it, so a text scanned in pieces matches as the whole would.
        """
        found = []
        for m in self._regex.finditer(text, start):
            pattern = self._groups[m.lastgroup or ""]
            if pattern.validate is None or pattern.validate(m.group()):
                found.append((m.start(), m.end(), pattern.name))
        return found

    def redact(
        self,
        text: str,
        matches: list[tuple[int, int, str]] | None = None,
        end: int | None = None,
        start: int = 0,
    ) -> str:
        """``text[start:end]`` with every match replaced (``matches`` precomputed from ``start`` on)."""
        stop = len(text) if end is None else end
        out: list[str] = []
        pos = start
        for m_start, m_end, name in self.matches(text, start) if matches is None else matches:
            if m_end > stop:
                break
            out.append(text[pos:m_start])
            out.append(self.replacement.format(name=name))
            pos = m_end
        out.append(text[pos:stop])
        return "".join(out)

    @classmethod
    def from_config(cls, builtin: Iterable[str], patterns: Mapping[str, str], replacement: str) -> Redactor:
        """A redactor for the named built-ins plus ``patterns`` (name -> regular expression)."""
        chosen = [BUILTIN_PATTERNS[n] for n in builtin]
        chosen += [Pattern(name, regex) for name, regex in patterns.items()]
        return cls(chosen, replacement)
