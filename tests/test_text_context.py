"""The context classifier: trained on English and Spanish posts, measured on Norwegian, Arabic,
French and German ones it never saw, with the real multilingual embedder.

The labelled posts are in tests/data/text (written for the project; see its README).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firebreak.errors import FirebreakError
from firebreak.text.context import (
    EMBEDDER,
    LABELS,
    ContextClassifier,
    ContextHead,
    LabelledInvalid,
    TextEmbedder,
    evaluate,
    fit_context_head,
    format_evaluation,
    read_labelled,
    train_context_head,
)

DATA = Path(__file__).parent / "data" / "text"
HELD_OUT_LANGUAGES = ("nb", "ar", "fr", "de")


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder()


@pytest.fixture(scope="module")
def trained(embedder: TextEmbedder) -> ContextHead:
    posts, sha256 = read_labelled(DATA / "train.jsonl")
    return train_context_head(posts, sha256, embedder)


@pytest.fixture(scope="module")
def measured(trained: ContextHead, embedder: TextEmbedder) -> dict[str, object]:
    posts, sha256 = read_labelled(DATA / "eval.jsonl")
    return evaluate(ContextClassifier(trained, embedder), posts, sha256)


def test_the_head_records_its_training_data(trained: ContextHead) -> None:
    posts, sha256 = read_labelled(DATA / "train.jsonl")
    assert trained.trained_on["sha256"] == sha256
    assert trained.trained_on["posts"] == len(posts)
    assert set(trained.trained_on["languages"]) == {"en", "es"}
    assert trained.labels == LABELS and trained.embedder == EMBEDDER
    assert trained.metrics["training"]["overall"]["accuracy"] > 0.9


def test_news_and_counter_speech_are_not_labelled_support_in_unseen_languages(
    measured: dict[str, object],
) -> None:
    languages = measured["languages"]
    assert isinstance(languages, dict)
    print("\n" + "\n".join(format_evaluation(measured)))  # the figures, in the log
    for lang in HELD_OUT_LANGUAGES:
        block = languages[lang]
        # The figure that protects reporters and counter-speakers.
        assert block["news_counter_as_support"] <= 0.15, (lang, block)
        # And what would be acted on without a person looking (P(support) ≥ 0.8).
        assert block["news_counter_matched"] <= 0.03, (lang, block)
        support = block["classes"]["support"]
        assert support["precision"] >= 0.7 and support["recall"] >= 0.6, (lang, support)
    overall = measured["overall"]
    assert isinstance(overall, dict)
    assert overall["accuracy"] >= 0.85


def test_a_saved_head_classifies_the_same(
    trained: ContextHead, embedder: TextEmbedder, tmp_path: Path
) -> None:
    path = tmp_path / "head.json"
    trained.save(path)
    loaded = ContextHead.load(path)
    texts = ["Ruhm den Kämpfern des IS!", "Le tribunal a condamné trois membres de Daech."]
    before = ContextClassifier(trained, embedder).classify(texts)
    after = ContextClassifier(loaded, embedder).classify(texts)
    assert [s.label for s in before] == [s.label for s in after]
    assert np.allclose([s.support for s in before], [s.support for s in after])


def test_a_head_for_another_embedder_is_refused(trained: ContextHead, tmp_path: Path) -> None:
    path = tmp_path / "head.json"
    trained.save(path)
    record = json.loads(path.read_text())
    record["embedder"] = "some-other-model"
    path.write_text(json.dumps(record))
    with pytest.raises(LabelledInvalid, match="some-other-model"):
        ContextHead.load(path)
    path.write_text("{}")
    with pytest.raises(LabelledInvalid, match="not a firebreak-text-head"):
        ContextHead.load(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"text": "x", "label": "praise"}\n', "label must be one of"),
        ('{"label": "news"}\n', "no text"),
        ("not json\n", "not JSON"),
        ("[1, 2]\n", "JSON object"),
        ("\n\n", "no labelled posts"),
    ],
)
def test_bad_labelled_files_are_refused_with_the_line(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(LabelledInvalid, match=reason):
        read_labelled(path)


def test_fitting_separates_separable_classes() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 384)).astype(np.float32)
    labels = [LABELS[i % 4] for i in range(200)]
    vectors = centres[[i % 4 for i in range(200)]] + rng.normal(scale=0.3, size=(200, 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    head = fit_context_head(vectors.astype(np.float32), labels)
    predicted = [head.labels[int(r.argmax())] for r in head.probabilities(vectors)]
    assert predicted == labels
    with pytest.raises(FirebreakError, match="two labels"):
        fit_context_head(vectors[:3].astype(np.float32), ["news"] * 3)


def test_cli_trains_and_evaluates(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    small = tmp_path / "small.jsonl"
    lines = (DATA / "train.jsonl").read_text(encoding="utf-8").splitlines()
    small.write_text("\n".join(lines[::8]), encoding="utf-8")
    head = tmp_path / "head.json"
    trained = cli("text", "train", small, "--out", head)
    assert trained.code == 0, trained.stderr
    assert json.loads(head.read_text())["trained_on"]["posts"] == len(lines[::8])
    evaluated = cli("text", "eval", small, "--head", head, "--json")
    assert evaluated.code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["overall"]["posts"] == len(lines[::8])
    missing = cli("text", "eval", small)
    assert missing.code != 0 and "no text classifier" in missing.stderr
