"""API shapes of token classification (entity and skill extraction): the body and the
answer of ``POST /v1/models/{name}/predict`` for ``token-classification`` models.

The limits are the text classifier's, and are settings: at most
``AIWEB_SERVING__MAX_INPUTS`` texts (256; more is a 413) of at most
``AIWEB_SERVING__MAX_TEXT_CHARS`` characters each (10,000; a longer one is a 422 naming
it), checked by the service (:meth:`aiweb.entities.service.EntityService.check_inputs`);
the served OpenAPI document states this deployment's values
(:func:`aiweb.api.openapi_facts.setting_bounds`). ``user_id`` (sticky rollouts) is added to
the body by the predict route, as for every task, not by this model.

Offsets are Unicode code point indices into the input as sent (Python's ``str``
indexing): ``input[start:end] == text`` for every entity. JavaScript strings index UTF-16
code units, so outside the Basic Multilingual Plane (emoji …) the two differ: slice with
``Array.from(input).slice(start, end).join("")``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from aiweb.api.openapi_facts import setting_bounds

__all__ = [
    "EntitiesPredictRequest",
    "EntitiesPredictResponse",
    "EntityOut",
    "EntityPrediction",
]

_EXAMPLE_TEXT = (
    "Senior Python developer with Kubernetes and PostgreSQL experience, based in Berlin."
)

#: one input text; its length bound is a setting (documented, checked by the service)
InputText = Annotated[
    str,
    Field(json_schema_extra=setting_bounds(maxLength="AIWEB_SERVING__MAX_TEXT_CHARS")),
]


class EntitiesPredictRequest(BaseModel):
    """Texts whose entities to extract. Limits (count, length) are settings, checked by
    the service."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": [_EXAMPLE_TEXT]}]},
    )

    inputs: list[InputText] = Field(
        ...,
        min_length=1,
        description="1 to 256 texts (AIWEB_SERVING__MAX_INPUTS; more is a 413), each at "
        "most 10,000 characters (AIWEB_SERVING__MAX_TEXT_CHARS; longer is a 422). Any "
        "Unicode; an empty or blank text has no entity.",
        json_schema_extra=setting_bounds(maxItems="AIWEB_SERVING__MAX_INPUTS"),
    )


class EntityOut(BaseModel):
    """One entity found in a text."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"text": "Python", "label": "Skill", "start": 7, "end": 13, "score": 1.0}]
        }
    )

    text: str = Field(..., description="The entity's text: exactly `input[start:end]`.")
    label: str = Field(
        ..., description="Its type, one of the model's labels (`Skill`, `person` …)."
    )
    start: int = Field(
        ...,
        ge=0,
        description="Offset of its first character in the input, in Unicode code points "
        "(not UTF-16 code units: see the module docs for JavaScript).",
    )
    end: int = Field(
        ..., ge=1, description="Offset one past its last character (exclusive), in code points."
    )
    score: float = Field(
        ...,
        ge=0.0,
        le=1.0,
        description="Confidence in [0, 1]. The transition-based recogniser gives no "
        "probability: this is 1.0 for every entity, not a calibrated confidence.",
    )


class EntityPrediction(BaseModel):
    """The entities of one input."""

    id: str = Field(..., description="Prediction id: send feedback about it later.")
    entities: list[EntityOut] = Field(
        ...,
        description="The entities found, by increasing `start`, never overlapping; empty "
        "when there is none.",
    )


class EntitiesPredictResponse(BaseModel):
    """The entities of each input, aligned with ``inputs`` by index."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "skills",
                    "version": 3,
                    "predictions": [
                        {
                            "id": "0b6f6d7e-2f4e-4c1a-9a51-3c9f0f6b8e21",
                            "entities": [
                                {
                                    "text": "Python",
                                    "label": "Skill",
                                    "start": 7,
                                    "end": 13,
                                    "score": 1.0,
                                },
                                {
                                    "text": "Kubernetes",
                                    "label": "Skill",
                                    "start": 29,
                                    "end": 39,
                                    "score": 1.0,
                                },
                            ],
                        }
                    ],
                }
            ]
        }
    )

    model: str = Field(..., description="The model's name.")
    version: int = Field(..., description="The version that answered (also `X-Model-Version`).")
    predictions: list[EntityPrediction] = Field(
        ..., description="One per input, in the order of `inputs`."
    )
