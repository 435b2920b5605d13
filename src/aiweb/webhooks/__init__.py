"""Signed webhooks: subscriptions, the delivery outbox, signing and the HTTP sender.

Events come from the layers above through plain calls of :func:`emit` (the jobs runner,
the registry's alias hook, the drift alerts): an event becomes one ``pending`` row of
``webhook_deliveries`` per subscribed webhook, in the database, never an HTTP call on the
caller's path. The scheduler tick (embedded in ``aiweb serve``, or Celery beat in
production) posts due deliveries (:meth:`WebhookService.deliver_due`), signed
(:mod:`aiweb.webhooks.signing`), retried with exponential back-off up to
``AIWEB_WEBHOOKS__MAX_ATTEMPTS`` tries. This package imports nothing above
:mod:`aiweb.db`; see ``docs/webhooks.md``.
"""

from aiweb.webhooks.service import (
    EVENTS,
    WebhookService,
    delete_managed,
    emit,
    has_subscribers,
    put_managed,
    queue,
)
from aiweb.webhooks.signing import SIGNATURE_HEADER, sign

__all__ = [
    "EVENTS",
    "SIGNATURE_HEADER",
    "WebhookService",
    "delete_managed",
    "emit",
    "has_subscribers",
    "put_managed",
    "queue",
    "sender",
    "service",
    "sign",
    "signing",
]
