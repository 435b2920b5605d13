"""The support assistant (issue 24): intents, slots, answers from a help collection and
handoff to a person, built on the text-classification, token-classification and search
tasks.

What is built so far:

- :mod:`aiweb.assistant.extractors`: slot values from a message (number, money, date,
  e-mail, choice; entity spans from a token-classification model), with their spans;
- :mod:`aiweb.assistant.config`: an assistant's configuration and its static checks;
- :mod:`aiweb.assistant.dialogue`: one turn of a conversation — the policy that asks the
  models (:class:`~aiweb.assistant.dialogue.Brain`) what it needs and replies;
- :mod:`aiweb.assistant.orm` and :mod:`aiweb.assistant.store`: assistants, conversations
  and messages in the database (migration 0019), a turn written in one transaction,
  concurrent writers kept from overwriting each other;
- :mod:`aiweb.assistant.service`: config checks against the registry, and a turn on the
  served models (:class:`~aiweb.assistant.service.ModelBrain`), retried when another
  writer changed the conversation;
- :mod:`aiweb.assistant.routes` and :mod:`aiweb.assistant.schemas`: ``/v1/assistants``
  (configs, a visitor's messages) and ``/v1/conversations`` (read, erase);
- :mod:`aiweb.assistant.live`: a conversation's events to the sockets watching it, in
  memory or over Redis pub/sub;
- :mod:`aiweb.assistant.guard`: the registry refuses to delete a model an assistant
  answers with;
- :mod:`aiweb.assistant.task`: its entry in the task list.

The submodules are not imported here: the CLI imports the light :mod:`.guard` on every
registry command, without the web and model stacks the others bring.
"""

__all__ = [
    "config",
    "dialogue",
    "extractors",
    "guard",
    "live",
    "orm",
    "routes",
    "schemas",
    "service",
    "store",
    "task",
]
