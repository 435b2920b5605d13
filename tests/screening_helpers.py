"""What the screening tests share: a tiny skills model's training sentences, a job
description, a matching CV and another one, and the PII the matching CV carries.

Imported by test modules (``from screening_helpers import …``): pytest puts ``tests/``,
the directory of the root conftest, on ``sys.path``.
"""

from __future__ import annotations

import random

from aiweb.config import Settings
from aiweb.entities.data import Example, from_tags
from aiweb.entities.model import EntityModel, fit
from aiweb.registry.factory import build_registry

SKILLS = ["Python", "SQL", "Docker", "Kubernetes", "Excel", "Photoshop", "Java", "Figma"]
FILLERS = ["we", "need", "strong", "experience", "with", "and", "good", "knowledge", "of"]
EMAIL, PHONE = "jane.doe@example.com", "+44 20 7946 0958"

JOB = "Backend engineer. We need Python , SQL and Docker ; Kubernetes is a plus ."
MATCHING = [
    "Jane Doe",
    f"{EMAIL} | {PHONE}",
    "Backend developer : Python , SQL , Docker and Kubernetes .",
]
OTHER = ["John Roe", "john@example.org", "Designer : Photoshop , Figma and Excel ."]


def sentence(rng: random.Random) -> Example:
    """A sentence of filler words and :data:`SKILLS`, each skill tagged ``Skill``."""
    words: list[str] = []
    tags: list[str] = []
    for _ in range(rng.randrange(2, 5)):
        for w in rng.sample(FILLERS, rng.randrange(1, 3)):
            words.append(w)
            tags.append("O")
        words.append(rng.choice(SKILLS))
        tags.append("B-Skill")
    words.append(".")
    tags.append("O")
    return from_tags(words, tags)


def tiny_skills_model() -> EntityModel:
    """A skills model trained in a few seconds on 150 :func:`sentence` (seeded)."""
    rng = random.Random(0)
    return fit([sentence(rng) for _ in range(150)], epochs=6, seed=0)


def register(
    settings: Settings, name: str, model: EntityModel, task: str = "token-classification"
) -> None:
    """Register ``model`` as the next version of ``name`` in ``settings``' registry."""
    settings.ensure_dirs()
    registry, engine = build_registry(settings)
    try:
        registry.register_version(
            name,
            task,
            artifact=model.to_bytes(),
            artifact_format="spacy",
            labels=list(model.labels),
            signature={},
            lineage={},
            evaluation={},
        )
    finally:
        engine.dispose()
