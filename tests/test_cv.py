"""Cross-validation: stratified folds of train, one run per fold, mean +- std of each metric, an optional refit."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import tiny_overrides

from textft.config import RecipeError, TextftError, load_recipe
from textft.cv import assign_folds, fold_rows
from textft.train import main


def test_multi_label_folds_keep_each_labels_share():
    keys = [[1, 0, 0]] * 12 + [[0, 1, 1]] * 6 + [[1, 0, 1]] * 6
    folds = assign_folds(keys, 3, seed=0)
    for fold in range(3):
        held_out = fold_rows(folds, fold)[1]
        assert [sum(keys[i][j] for i in held_out) for j in range(3)] == [6, 2, 4]


def test_folds_cover_every_row_once_and_keep_each_class_share():
    keys = ["a"] * 30 + ["b"] * 15 + ["c"] * 6
    folds = assign_folds(keys, 3, seed=0)
    assert len(folds) == len(keys) and set(folds) == {0, 1, 2}
    for fold in range(3):
        train, held_out = fold_rows(folds, fold)
        assert sorted(train + held_out) == list(range(len(keys)))
        assert Counter(keys[i] for i in held_out) == {"a": 10, "b": 5, "c": 2}
    assert assign_folds(keys, 3, seed=0) == folds != assign_folds(keys, 3, seed=1)


def test_too_few_rows_of_a_class_for_the_folds_is_an_error():
    with pytest.raises(TextftError, match=r"cv.folds=3: label 'b' has only 2 train row\(s\)"):
        assign_folds(["a"] * 9 + ["b"] * 2, 3, seed=0)


def test_cv_keys_are_checked():
    with pytest.raises(RecipeError, match="cv.folds"):
        load_recipe("bbc_minilm", ["cv.folds=1"])
    with pytest.raises(RecipeError, match="'cv.folds' and 'seeds'"):
        load_recipe("bbc_minilm", ["cv.folds=3", "seeds=[1,2]"])
    with pytest.raises(RecipeError, match="cv.refit"):
        load_recipe("bbc_minilm", ["cv.refit=true"])


def test_cv_runs_each_fold_summarises_and_refits_on_all_of_train(tiny_models, keyword_files, tmp_path, capsys):
    out = tmp_path / "cv"
    quick = {"train.num_train_epochs": "1", "data.val_split": "0.2"}
    main(
        [
            "recipe=bbc_minilm",
            *tiny_overrides(tiny_models["bert"], keyword_files, out, **quick),
            "cv.folds=2",
            "cv.refit=true",
        ]
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["folds"] == 2
    folds = [json.loads((out / f"fold_{i}" / "metrics.json").read_text()) for i in range(2)]
    for name in ("eval_accuracy", "test_accuracy", "test_f1_macro"):
        values = [m[name] for m in folds]
        assert summary["metrics"][name]["values"] == values
        assert summary["metrics"][name]["mean"] == pytest.approx(sum(values) / 2)
    assert printed["test_accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"]["mean"], abs=1e-4)
    assert "| test_accuracy |" in (out / "metrics_summary.md").read_text()

    # every train+validation row is in one fold; the folds are stratified by label
    fold_of_row = json.loads((out / "folds.json").read_text())["fold_of_row"]
    assert len(fold_of_row) == 96 and Counter(fold_of_row) == {0: 48, 1: 48}
    assert load_recipe(str(out / "fold_0" / "recipe.yaml")).data.files.test == keyword_files["test"]

    # the refit: the model in output_dir itself, trained on all of train, with its test metrics in the summary
    assert (out / "model.safetensors").is_file() and (out / "learning_curves.png").is_file()
    refit = json.loads((out / "metrics.json").read_text())
    assert summary["refit"]["test_accuracy"] == refit["test_accuracy"]
    assert not any(k.startswith("eval_") for k in summary["refit"])
