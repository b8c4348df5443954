"""The offline multi-label and regression sets built from BBC News: disjoint sources, no leakage, both label layouts."""

from __future__ import annotations

import csv
import json

import pytest

from textft.assets import (
    SENTENCE_END,
    TOPICS,
    bbc_articles,
    prepare_bbc_multilabel,
    prepare_bbc_regression,
    split_articles,
    split_sentence_articles,
    unique_articles,
)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    return prepare_bbc_multilabel(tmp_path_factory.mktemp("ml"), n_train=300, n_test=100)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    return prepare_bbc_regression(tmp_path_factory.mktemp("reg"), n_train=300, n_test=100)


def test_sentence_articles_split_like_bbc_and_share_no_sentence():
    train_articles, test_articles = split_articles(unique_articles(bbc_articles()))
    train, test = split_sentence_articles()
    assert len(train) == len(train_articles) and len(test) == len(test_articles)
    assert not {t for t, _ in train_articles} & {t for t, _ in test_articles}
    train_sentences = {s for sentences, _ in train for s in sentences}
    assert not any(s in train_sentences for sentences, _ in test for s in sentences)


@pytest.mark.parametrize("name", ["multilabel", "regression"])
def test_no_test_sentence_appears_in_train_rows(name, request):
    paths = request.getfixturevalue(name)
    train_text = "\n".join(row["text"] for row in read_jsonl(paths["train_jsonl"]))
    for row in read_jsonl(paths["test_jsonl"]):
        for sentence in SENTENCE_END.split(row["text"]):
            assert sentence not in train_text


@pytest.mark.parametrize("name", ["multilabel", "regression"])
def test_rows_do_not_depend_on_anything_but_the_preparer_seed(name, request, tmp_path):
    paths = request.getfixturevalue(name)
    prepare = prepare_bbc_multilabel if name == "multilabel" else prepare_bbc_regression
    again = prepare(tmp_path, n_train=300, n_test=100)
    for key in ("train_jsonl", "test_csv"):
        assert again[key].read_bytes() == paths[key].read_bytes()


def test_multilabel_layouts_agree_and_cardinality_varies(multilabel):
    for split in ("train", "test"):
        rows = read_jsonl(multilabel[f"{split}_jsonl"])
        table = read_csv(multilabel[f"{split}_csv"])
        assert [r["text"] for r in rows] == [r["text"] for r in table]
        for row, line in zip(rows, table, strict=True):
            assert row["labels"] and set(row["labels"]) <= set(TOPICS)
            assert line["labels"].split("|") == row["labels"]
            assert [t for t in TOPICS if line[t] == "1"] == row["labels"]
        cardinality = {len(r["labels"]) for r in rows}
        assert cardinality == {1, 2, 3}
    assert all(100 <= len(r["text"].split()) <= 185 for r in read_jsonl(multilabel["train_jsonl"]))


def known_sentences(piece: str, known) -> list[str]:
    """A piece of a row split at sentence ends, as known sentences: two joined segments can hide a sentence end
    (an article's last sentence may end in .'' or no stop)."""
    if piece in known:
        return [piece]
    cut = next(j for j in range(len(piece)) if piece[j] == " " and piece[:j] in known)
    return [piece[:cut], *known_sentences(piece[cut + 1 :], known)]


def sources(rows: list[dict], articles: list[tuple[list[str], str]]) -> list[dict[int, int]]:
    """For each row: {article index: how many of the row's sentences come from it}; a sentence that several articles
    hold (BBC repeats some) goes to the article that explains most of the row (greedy cover)."""
    owners: dict[str, set[int]] = {}
    for i, (sentences, _) in enumerate(articles):
        for s in sentences:
            owners.setdefault(s, set()).add(i)
    out = []
    for row in rows:
        left = [s for piece in SENTENCE_END.split(row["text"]) for s in known_sentences(piece, owners)]
        counts: dict[int, int] = {}
        while left:
            best = max({i for s in left for i in owners[s]}, key=lambda i: sum(i in owners[s] for s in left))
            counts[best] = sum(best in owners[s] for s in left)
            left = [s for s in left if best not in owners[s]]
        out.append(counts)
    return out


def test_multilabel_labels_are_the_topics_of_the_source_articles_and_repeat(multilabel):
    train_articles, _ = split_sentence_articles()
    rows = read_jsonl(multilabel["train_jsonl"])
    row_sources = sources(rows, train_articles)
    for row, counts in zip(rows, row_sources, strict=True):
        assert 1 <= len(counts) <= 3
        assert sorted({train_articles[i][1] for i in counts}) == row["labels"]
    repeated = sum(len(counts) > len(row["labels"]) for row, counts in zip(rows, row_sources, strict=True))
    assert repeated > 0.1 * len(rows)


def test_regression_target_is_five_times_the_sport_share(regression):
    rows = read_jsonl(regression["train_jsonl"])
    table = read_csv(regression["train_csv"])
    assert [float(r["label"]) for r in table] == [r["label"] for r in rows]
    assert min(r["label"] for r in rows) == 0.0 and max(r["label"] for r in rows) == 5.0
    assert len({r["label"] for r in rows}) > 15
    assert all(len(r["text"].split()) <= 195 for r in rows)
    train_articles, _ = split_sentence_articles()
    for row, counts in zip(rows, sources(rows, train_articles), strict=True):
        sport = sum(n for i, n in counts.items() if train_articles[i][1] == "sport")
        assert len(counts) <= 2 and 4 <= sum(counts.values()) <= 8
        assert row["label"] == round(5 * sport / sum(counts.values()), 4)
