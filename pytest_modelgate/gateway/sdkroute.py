"""``Gateway.openai(workflow)``: an openai SDK client whose every request the route decides.

Code written against the openai SDK keeps its ``client.chat.completions.create(...)``; the
client's HTTP transport (:class:`RoutedTransport`) answers each request through the gateway:
the arm is chosen per request (sticky key, canary share, kill switch and a monitor's rollback
read on every request, as for ``chat``), the request is forwarded to that arm's model through
the model's measured transport (its URL, key and model id; ``model=`` of the caller is
ignored), and when the model cannot answer (a transport error, a 429 or a 5xx) the route's next
model is tried, as ``chat`` does. What ``chat`` adds and this does not: the contract check of
the reply and the shadow call (both need the whole reply, which a streamed SDK response only has
once the caller has read it); use ``chat`` for those.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx2

    from pytest_modelgate.gateway.core import Gateway

__all__ = ["RoutedTransport", "routed_openai"]

# Placeholder base URL of the routed client: its requests never go there (the transport
# forwards each to the arm's model), and .invalid never resolves if one ever did.
PLACEHOLDER_BASE_URL = "http://modelgate-gateway.invalid/v1"
_FALL_BACK_ON = frozenset({429, 500, 502, 503, 504})


def routed_openai(
    gateway: Gateway, workflow: str, key: str | None, *, max_retries: int, timeout_s: float
) -> Any:
    """An ``openai.OpenAI`` on a :class:`RoutedTransport` for ``workflow``."""
    import httpx2
    import openai

    class _Routed(RoutedTransport, httpx2.BaseTransport):
        pass

    transport = _Routed(gateway, workflow, key)
    return openai.OpenAI(
        base_url=PLACEHOLDER_BASE_URL,
        api_key="routed-by-modelgate",  # replaced per model by the transport; never sent
        http_client=httpx2.Client(transport=transport, timeout=timeout_s),
        max_retries=max_retries,
        timeout=timeout_s,
    )


class RoutedTransport:
    """An httpx2 transport that sends each request to the model its route chooses now."""

    def __init__(self, gateway: Gateway, workflow: str, key: str | None) -> None:
        self._gateway = gateway
        self._workflow = workflow
        self._key = key

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Choose the arm, forward, fall back on a failure the model gave."""
        gateway = self._gateway
        choice = gateway.choose(self._workflow, key=self._key)
        order = gateway._model_order(self._workflow, choice)
        gateway._count(self._workflow, choice.arm, "requests")
        if choice.killed:
            gateway._count(self._workflow, "stable", "kill_switch_hits")
        request.read()
        last_error: BaseException | None = None
        for index, model in enumerate(order):
            if index:
                gateway._count(self._workflow, choice.arm, "fallbacks")
                gateway._log(logging.WARNING, f"route {self._workflow}: falling back to {model}")
            client = gateway._llm(model)
            try:
                response = client.forward_sdk_request(request)
            except Exception as exc:  # the transport's errors: connection, deadline, bounds
                gateway._count(self._workflow, choice.arm, "errors")
                last_error = exc
                continue
            if response.status_code in _FALL_BACK_ON and index + 1 < len(order):
                gateway._count(self._workflow, choice.arm, "errors")
                response.close()
                continue
            return response
        assert last_error is not None
        raise last_error

    def close(self) -> None:
        """Nothing of its own: the models' clients belong to the gateway."""
