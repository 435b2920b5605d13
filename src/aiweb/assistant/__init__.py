"""The support assistant (issue 24): intents, slots, answers from a help collection and
handoff to a person, built on the text-classification, token-classification and search
tasks.

What is built so far, with no model, storage or transport of its own:

- :mod:`aiweb.assistant.extractors`: slot values from a message (number, money, date,
  e-mail, choice; entity spans from a token-classification model), with their spans;
- :mod:`aiweb.assistant.config`: an assistant's configuration and its static checks;
- :mod:`aiweb.assistant.dialogue`: one turn of a conversation — the policy that asks the
  models (:class:`~aiweb.assistant.dialogue.Brain`) what it needs and replies;
- :mod:`aiweb.assistant.orm` and :mod:`aiweb.assistant.store`: assistants, conversations
  and messages in the database (migration 0019), a turn written in one transaction,
  concurrent writers kept from overwriting each other;
- :mod:`aiweb.assistant.task`: its entry in the task list (its tables, so far).
"""

from aiweb.assistant import config, dialogue, extractors, orm, store, task

__all__ = ["config", "dialogue", "extractors", "orm", "store", "task"]
