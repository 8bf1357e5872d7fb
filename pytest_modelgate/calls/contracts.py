"""Checking one reply against a ``model_contract``: JSON, schema, tool calls, language, tokens.

Pure: no pytest, no I/O. :func:`check_reply` takes the contract from the test's markers, the
request that was sent (an OpenAI chat-completions body) and the parsed completion, and returns a
:class:`ContractCheck` whose fields map one to one onto the contract fields of
:class:`~pytest_modelgate.calls.records.CallRecord`.

Each check is ``True``/``False`` when it applied and ``None`` when it did not (the contract does
not ask for it, or the reply gives nothing to judge). Every failed check adds one short sentence
to ``violations`` that quotes the offending part of the reply.

Compiled JSON Schema validators are cached by the canonical JSON text of the schema: the same
schema is checked on every call of every test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from pytest_modelgate.calls.langdetect import detect_language
from pytest_modelgate.calls.protocol import ParsedCompletion, ParsedToolCall, content_text, shorten
from pytest_modelgate.markers import ModelContract

__all__ = ["ContractCheck", "applied_checks", "check_reply", "prompt_text"]

_QUOTE_LIMIT = 120


@dataclass(frozen=True, kw_only=True)
class ContractCheck:
    """The result of checking one reply; ``None`` on a check means it did not apply."""

    # None when the contract asks for neither json nor a schema, or the reply has no text.
    json_valid: bool | None
    schema_valid: bool | None
    # None when neither the contract nor the request names tools, or the reply called none.
    tool_calls_valid: bool | None
    # None when the contract has no language, or a language it compares is undetectable.
    language_match: bool | None
    # None when the contract has no max_output_tokens or the usage is unknown.
    output_tokens_ok: bool | None
    # Always computed, whatever the contract: the last user message's language and the reply's.
    prompt_language: str | None
    reply_language: str | None
    # One short sentence per failed check, quoting the reply.
    violations: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.violations


def _quote(text: str) -> str:
    return f'"{shorten(text, _QUOTE_LIMIT)}"'


def prompt_text(request: Mapping[str, Any] | None) -> str:
    """The text of the request's last message with role ``user`` (``""`` when there is none)."""
    if request is None:
        return ""
    messages = request.get("messages")
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


# --------------------------------------------------------------------------------------------
# JSON and schemas


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and neither does the contract.
    raise ValueError(f"{name} is not JSON")


def _parse_json(text: str) -> tuple[bool, Any]:
    """``(True, value)`` when ``text`` is one JSON value (surrounding whitespace allowed)."""
    try:
        return True, json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None


def _strings(value: Any) -> Iterator[str]:
    """The string values inside a parsed JSON value, depth first; object keys are left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _canonical(schema: Mapping[str, Any]) -> str | None:
    try:
        return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=512)
def _compiled(schema_json: str) -> Draft202012Validator | None:
    """A validator for the schema whose canonical JSON is ``schema_json``; ``None`` if invalid."""
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return None
    return Draft202012Validator(schema)


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator | None:
    key = _canonical(schema)
    return _compiled(key) if key is not None else None


def _schema_error(validator: Draft202012Validator, instance: Any) -> str | None:
    """``"<path>: <message>"`` for the most relevant error, ``None`` when ``instance`` is valid."""
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    return f"{error.json_path}: {shorten(error.message, _QUOTE_LIMIT)}"


def _model_error(contract: ModelContract, instance: Any) -> str | None:
    """Like :func:`_schema_error`, validating with the contract's pydantic model."""
    import pydantic

    assert contract.schema_model is not None
    try:
        contract.schema_model.model_validate(instance)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        path = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        return f"{path}: {shorten(first['msg'], _QUOTE_LIMIT)}"
    return None


# --------------------------------------------------------------------------------------------
# Tools


def _declared_tools(request: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any] | None]:
    """Function name -> declared ``parameters`` (``None`` when not declared) of the request."""
    if request is None:
        return {}
    tools = request.get("tools")
    if not isinstance(tools, Sequence) or isinstance(tools, str):
        return {}
    declared: dict[str, Mapping[str, Any] | None] = {}
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            declared[function["name"]] = parameters if isinstance(parameters, Mapping) else None
    return declared


def _tool_call_problem(
    call: ParsedToolCall,
    allowed: tuple[str, ...] | None,
    declared: Mapping[str, Mapping[str, Any] | None],
) -> str | None:
    """The first thing wrong with one tool call, as a sentence, or ``None``."""
    name = shorten(call.name, _QUOTE_LIMIT)
    if allowed is not None and call.name not in allowed:
        listed = ", ".join(allowed) if allowed else "none"
        return f'tool call "{name}" is not allowed by the contract (allowed: {listed})'
    if declared and call.name not in declared:
        return (
            f'tool call "{name}" is not a function the request declared '
            f"(declared: {', '.join(declared)})"
        )
    # Some providers send "" rather than "{}" for a call without arguments.
    raw = call.arguments if call.arguments.strip() else "{}"
    parsed_ok, arguments = _parse_json(raw)
    if not parsed_ok or not isinstance(arguments, dict):
        return f'tool call "{name}" arguments are not a JSON object: {_quote(call.arguments)}'
    parameters = declared.get(call.name)
    if parameters is not None:
        validator = _validator(parameters)
        # A request whose own parameters schema is invalid cannot be held against the reply.
        problem = _schema_error(validator, arguments) if validator is not None else None
        if problem is not None:
            return f'tool call "{name}" arguments do not match its parameters at {problem}'
    return None


# --------------------------------------------------------------------------------------------
# The check


def applied_checks(contract: ModelContract | None, check: ContractCheck) -> tuple[str, ...]:
    """The names of the checks ``contract`` applied to a reply (``CallRecord.checks``).

    ``"json"``, ``"schema"``, ``"tools"``, ``"language"``, ``"max_output_tokens"``; the judge's
    contract rates count only the replies a check was applied to.
    """
    if contract is None:
        return ()
    has_schema = contract.schema is not None or contract.schema_model is not None
    applied = []
    if contract.json or has_schema:
        applied.append("json")
    if has_schema:
        applied.append("schema")
    if check.tool_calls_valid is not None:
        applied.append("tools")
    if contract.language is not None:
        applied.append("language")
    if contract.max_output_tokens is not None:
        applied.append("max_output_tokens")
    return tuple(applied)


def check_reply(
    contract: ModelContract | None,
    request: Mapping[str, Any] | None,
    completion: ParsedCompletion,
) -> ContractCheck:
    """Check ``completion`` (the reply to ``request``) against ``contract``.

    * json / schema: the reply text must parse as one JSON value (surrounding whitespace only,
      no code fence) and match the schema, or the pydantic model when one was given. A reply
      that is not JSON fails the schema too, with a single violation.
    * tools: every tool call must be in ``contract.tools`` (when set), be a function the request
      declared (when it declared any), and carry a JSON object as arguments that matches the
      declared ``parameters``. The request's declarations are checked even without a contract.
    * language: the reply text's language must equal the prompt's (``"match"``) or the code. For
      a JSON reply the language of its string values is used, not of its keys.
    * max_output_tokens: ``usage.completion_tokens`` must not exceed it.

    ``prompt_language`` and ``reply_language`` are computed whatever the contract says.
    """
    violations: list[str] = []
    text = completion.text
    is_json, parsed = _parse_json(text) if text else (False, None)

    prompt_language = detect_language(prompt_text(request))
    if is_json:
        reply_language = detect_language(" ".join(_strings(parsed)))
    else:
        reply_language = detect_language(text)

    json_valid: bool | None = None
    schema_valid: bool | None = None
    if contract is not None and (contract.json or contract.schema is not None) and text:
        json_valid = is_json
        if not is_json:
            violations.append(f"reply is not JSON: {_quote(text)}")
        if contract.schema is not None:
            problem: str | None = "not JSON"
            if is_json and contract.schema_model is not None:
                problem = _model_error(contract, parsed)
            elif is_json:
                validator = _validator(contract.schema)
                problem = _schema_error(validator, parsed) if validator is not None else None
            schema_valid = problem is None
            if is_json and problem is not None:
                violations.append(f"reply does not match the schema at {problem}")

    tool_calls_valid: bool | None = None
    allowed = contract.tools if contract is not None else None
    declared = _declared_tools(request)
    # Without a contract nothing is checked: the markers say what a workflow must keep.
    if contract is not None and completion.tool_calls and (allowed is not None or declared):
        problems = [
            problem
            for call in completion.tool_calls
            if (problem := _tool_call_problem(call, allowed, declared)) is not None
        ]
        tool_calls_valid = not problems
        violations.extend(problems)

    language_match: bool | None = None
    if contract is not None and contract.language is not None:
        matching = contract.language == "match"
        expected = prompt_language if matching else contract.language
        if expected is not None and reply_language is not None:
            language_match = reply_language == expected
            if not language_match:
                why = " (the prompt's language)" if matching else ""
                violations.append(
                    f'reply is in "{reply_language}", expected "{expected}"{why}: {_quote(text)}'
                )

    output_tokens_ok: bool | None = None
    tokens = completion.usage.completion_tokens if completion.usage is not None else None
    if contract is not None and contract.max_output_tokens is not None and tokens is not None:
        output_tokens_ok = tokens <= contract.max_output_tokens
        if not output_tokens_ok:
            violations.append(
                f"reply used {tokens} completion tokens, more than "
                f"max_output_tokens={contract.max_output_tokens}"
            )

    return ContractCheck(
        json_valid=json_valid,
        schema_valid=schema_valid,
        tool_calls_valid=tool_calls_valid,
        language_match=language_match,
        output_tokens_ok=output_tokens_ok,
        prompt_language=prompt_language,
        reply_language=reply_language,
        violations=tuple(violations),
    )
