"""A model trained on a built-in dataset with a cross-domain test set
(:data:`aiweb.entities.data.CROSS_DOMAIN`: SkillSpan -> job_description_entities) is also
scored on it: ``aiweb train`` prints the table, the version's report keeps the scores,
and training goes on without them when the set is not on disk.

The datasets are small stand-ins written in the layout of ``shared/data`` (the real ones
take a quarter of an hour to train on), so the figures are checked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiweb.cli import app as cli_app
from aiweb.cli._common import open_registry
from aiweb.config import Settings
from aiweb.datasets import job_description_entities, skillspan
from aiweb.registry.entities import ModelRef

SKILLS = ["python", "java", "sql", "docker", "excel"]
KNOWLEDGE = ["accounting", "selenium", "finance"]


def conll(rows: list[list[tuple[str, str]]]) -> str:
    return "".join("".join(f"{tok} {tag} \n" for tok, tag in row) + "\n" for row in rows)


def skillspan_rows(n: int) -> list[list[tuple[str, str]]]:
    rows = []
    for i in range(n):
        skill, known = SKILLS[i % len(SKILLS)], KNOWLEDGE[i % len(KNOWLEDGE)]
        rows.append(
            [("You", "O"), ("use", "O"), (skill, "B-Skill"), ("with", "O"), (known, "B-Knowledge")]
        )
    return rows


def write_data_home(root: Path, *, with_jde: bool) -> Path:
    home = root / "data"
    (home / skillspan.NAME).mkdir(parents=True)
    for split, files in skillspan.SPLITS.items():
        for name in files:
            (home / skillspan.NAME / name).write_text(
                conll(skillspan_rows(30 if split == "train" else 6))
            )
    if with_jde:
        (home / job_description_entities.NAME).mkdir()
        # 4 gold Skill spans, one Occupation (not scored): "python" and "accounting" match
        # exactly (the second read from Knowledge); "excel skills" overlaps "excel" only
        rows = [
            [("Need", "O"), ("python", "B-Skill"), ("and", "O"), ("accounting", "B-Skill")],
            [("Strong", "O"), ("excel", "B-Skill"), ("skills", "I-Skill")],
            [("A", "O"), ("chef", "B-Occupation"), ("who", "O"), ("cooks", "B-Skill")],
        ]
        (home / job_description_entities.NAME / "testset.txt").write_text("\n" + conll(rows))
    return home


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return settings


ARGS = ["train", "token-classification", "skills", "--dataset", "skillspan"]
PARAMS = ["--param", "epochs=8", "--param", "vectors=false", "--param", "contextual=false"]


def test_training_on_skillspan_is_also_scored_on_job_descriptions(
    cli_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIWEB_DATA_HOME", str(write_data_home(tmp_path, with_jde=True)))
    result = CliRunner().invoke(cli_app, [*ARGS, *PARAMS])
    assert result.exit_code == 0, result.stderr
    assert "cross-domain: job_description_entities test, its 4 Skill spans" in result.stdout
    assert "predicted Skill + Knowledge read as Skill" in result.stdout
    with open_registry() as registry:
        report = registry.resolve(ModelRef.parse("skills")).evaluation
    scores = report["cross_domain"]
    assert (scores["dataset"], scores["label"], scores["examples"], scores["support"]) == (
        "job_description_entities",
        "Skill",
        3,
        4,
    )
    assert scores["predicted_labels"] == ["Skill", "Knowledge"]
    for who in ("model", "baseline"):
        exact, overlap = scores[who]["exact"], scores[who]["overlap"]
        assert exact["support"] == overlap["support"] == 4
        assert 0.0 <= exact["f1"] <= overlap["f1"] <= 1.0
    # the CRF learns the words it saw: python (Skill) and accounting (Knowledge, read as
    # Skill) exactly; excel inside "excel skills" only by overlap; never "cooks"
    crf = scores["baseline"]
    assert crf["exact"]["correct"] == 2, crf
    assert crf["overlap"]["correct"] == 3, crf
    assert crf["overlap"]["recall"] == pytest.approx(3 / 4)


def test_training_goes_on_without_the_cross_domain_set(
    cli_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIWEB_DATA_HOME", str(write_data_home(tmp_path, with_jde=False)))
    monkeypatch.setenv("AIWEB_DATASETS_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli_app, [*ARGS, *PARAMS, "--param", "baseline=false"])
    assert result.exit_code == 0, result.stderr
    assert "cross-domain" not in result.stdout
    with open_registry() as registry:
        report = registry.resolve(ModelRef.parse("skills")).evaluation
    assert "cross_domain" not in report
    assert report["evaluated_on"] == "test"
