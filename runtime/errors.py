"""Errors that the CLI turns into one clear line and an exit code, never a traceback."""

from __future__ import annotations


class EdgegenError(Exception):
    """A problem with the user's input or environment, reported as one line.

    ``exit_code`` follows the CLI's convention: 2 for usage and input errors, 1 for a check
    (verification, threshold) that ran and failed.
    """

    exit_code: int = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class SpecError(EdgegenError, ValueError):
    """A model spec that is malformed: unknown fields, wrong types or impossible values."""


class ModelError(EdgegenError):
    """A model that does not compute what its spec says (e.g. an output of the wrong size): a
    problem with the model, not with the image it was given."""
