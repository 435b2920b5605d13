"""aiweb's Python SDK: :class:`Client` and :class:`AsyncClient` for the ``/v1`` API.

::

    from aiweb.client import Client

    with Client("http://127.0.0.1:8000", api_key="aiw_…") as aiweb:
        answer = aiweb.predict("sentiment", ["a wonderful film"])
        print(answer.predictions[0].label)

Needs only ``httpx`` and ``pydantic``: importing it loads none of the server's modules
(but :mod:`aiweb.errors`, whose classes the errors of :mod:`aiweb.client.errors`
subclass). Results are the models of :mod:`aiweb.client.models`. See docs/client.md.
"""

from aiweb.client._async import AsyncClient
from aiweb.client._base import RetryPolicy
from aiweb.client._sync import Client
from aiweb.client.errors import AiwebError, TransportError

__all__ = [
    "AiwebError",
    "AsyncClient",
    "Client",
    "RetryPolicy",
    "TransportError",
    "errors",
    "models",
    "webhooks",  # a module of its own (not imported here): webhook signature checks
]
