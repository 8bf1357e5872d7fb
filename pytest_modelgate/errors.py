"""Exception types shared by the pure modules; the pytest glue turns them into usage errors.

Every exception the package raises on purpose derives from ``ModelgateError`` so callers can catch
"our" failures without swallowing bugs. Exceptions that carry structured fields define
``__reduce__`` so they survive pickling (pytest-xdist ships exceptions between processes).
"""

from __future__ import annotations

from collections.abc import Sequence


class ModelgateError(Exception):
    """Base class of every error pytest-modelgate raises deliberately."""


class ConfigError(ModelgateError):
    """Invalid configuration: ``modelgate.yaml``, a model name, a region or an option value."""


class CatalogError(ModelgateError):
    """The built-in model catalog shipped with the package is invalid (a packaging bug)."""


class UnknownModelError(ConfigError):
    """A model name that neither the catalog nor ``modelgate.yaml`` knows.

    ``suggestions`` holds the closest known names, best first; ``hint`` says how to fix it;
    ``where`` (for example ``"modelgate.yaml: stable"``) says where the name was written.
    """

    def __init__(
        self,
        name: str,
        suggestions: Sequence[str] = (),
        hint: str | None = None,
        where: str | None = None,
    ) -> None:
        self.name = name
        self.suggestions: tuple[str, ...] = tuple(suggestions)
        self.hint = hint
        self.where = where
        message = f"unknown model {name!r}"
        if where:
            message = f"{where}: {message}"
        if self.suggestions:
            message += f"; closest known names: {', '.join(self.suggestions)}"
        if hint:
            message += f". {hint}"
        super().__init__(message)

    def __reduce__(
        self,
    ) -> tuple[type[UnknownModelError], tuple[str, tuple[str, ...], str | None, str | None]]:
        return (type(self), (self.name, self.suggestions, self.hint, self.where))


class MissingAPIKeyError(ModelgateError):
    """A model declares an API-key environment variable and none of its variables is set."""

    def __init__(self, model: str, variables: Sequence[str]) -> None:
        self.model = model
        self.variables: tuple[str, ...] = tuple(variables)
        message = f"model {model!r} needs an API key"
        if self.variables:
            message += f": set {self.variables[0]}"
        if len(self.variables) > 1:
            message += f" (or {' or '.join(self.variables[1:])})"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[MissingAPIKeyError], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.model, self.variables))


class ModelAPIError(ModelgateError):
    """A chat-completions call failed: the provider refused it, or every retry failed.

    ``status`` is the HTTP status (``None`` when no response arrived), ``error_kind`` one of
    :data:`pytest_modelgate.calls.records.ErrorKind`, ``provider_message`` the provider's own words
    (already stripped of the API key) and ``attempts`` how many HTTP attempts were made.
    """

    def __init__(
        self,
        model: str,
        status: int | None,
        error_kind: str,
        provider_message: str,
        attempts: int = 1,
        retryable: bool = False,
    ) -> None:
        self.model = model
        self.status = status
        self.error_kind = error_kind
        self.provider_message = provider_message
        self.attempts = attempts
        self.retryable = retryable
        # No status: say what went wrong; a 2xx status alone would read like a success.
        if status is None:
            where = f"{error_kind}:"
        elif 200 <= status < 300:
            where = f"HTTP {status} {error_kind}:"
        else:
            where = f"HTTP {status}"
        if retryable:
            why = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
        elif attempts > 1:
            why = f"not retried; attempt {attempts}"
        else:
            why = "not retried"
        super().__init__(f"{model}: {where} {provider_message} ({why})")

    def __reduce__(
        self,
    ) -> tuple[type[ModelAPIError], tuple[str, int | None, str, str, int, bool]]:
        return (
            type(self),
            (
                self.model,
                self.status,
                self.error_kind,
                self.provider_message,
                self.attempts,
                self.retryable,
            ),
        )


class CallDeadlineError(ModelAPIError):
    """A call outlived ``client.deadline_s``: the measuring transport stopped it.

    Raised by the transport itself (not by httpx), so neither ``llm.chat`` nor the openai SDK
    retries it: the deadline covers the whole call. ``error_kind`` is ``"timeout"``.
    """


class ResponseTooLargeError(ModelAPIError):
    """A response body grew beyond ``client.max_response_bytes``; reading stopped there.

    ``error_kind`` is ``"response_too_large"``; never retried (the same request would get the same
    answer).
    """


class ReplyFormatError(ModelgateError, ValueError):
    """A reply is not in the shape the test asked for: text that is not JSON, bad tool arguments."""


class ContractViolation(AssertionError):
    """A reply broke its ``@pytest.mark.model_contract``: the test fails, quoting the reply."""
