"""Errors that the command line turns into exit codes (2 for bad input, 1 for a lab that failed)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a lab file: where (file, line, field path) and what was expected."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<lab>"
        if self.line is not None:
            where += f":{self.line}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class LabFileError(Exception):
    """A lab file is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class LabError(RuntimeError):
    """A lab could not boot, or an operation on a running lab failed; the message says which step."""


class LabNotFound(LabError):
    """No running lab matches what the user named."""
