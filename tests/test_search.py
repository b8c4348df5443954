"""textft-search: an Optuna study over recipe keys, pruned on evaluations, resumable, never touching the test split."""

from __future__ import annotations

import csv
import json

import optuna
import pytest
from conftest import tiny_overrides, tiny_vit_recipe

from textft.config import TextftError, load_recipe
from textft.search import Param, parse_space, pruning_callback, suggest
from textft.search import main as search_main
from textft.train_args import best_metric

SPACE = (
    "search.space={train.learning_rate: {type: log, low: 1.0e-4, high: 3.0e-3},"
    " mode: {type: choice, values: [full, lora]}, lora.r: {type: int, low: 2, high: 8, step: 2}}"
)


def _read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_space_accepts_dotted_or_nested_keys_and_names_bad_entries():
    params = parse_space(
        {
            "train.learning_rate": {"type": "log", "low": 1e-5, "high": 1e-3},
            "lora": {"r": {"type": "choice", "values": [4, 8]}},
        }
    )
    assert params == [Param("train.learning_rate", "log", 1e-5, 1e-3), Param("lora.r", "choice", values=[4, 8])]
    bad = {
        "train.learning_rate": ({"type": "log", "low": 0, "high": 1e-3}, "low > 0"),
        "train.num_train_epochs": ({"type": "int", "low": 3, "high": 1}, "low < high"),
        "mode": ({"type": "pick", "values": ["full"]}, "float, int, log, choice"),
        "lora.r": ({"type": "choice", "values": []}, "values"),
        "seed": ({"type": "int", "low": 1, "high": 4, "steps": 2}, "unknown field 'steps'"),
    }
    for key, (entry, words) in bad.items():
        with pytest.raises(TextftError, match=f"search.space.{key}.*{words}"):
            parse_space({key: entry})


def test_objective_is_the_problem_types_metric_unless_the_recipe_names_one():
    from textft.problems import PROBLEMS

    single, regression = PROBLEMS["single_label"](["a", "b"]), PROBLEMS["regression"](["y"], 0.0, 1.0)
    cfg = load_recipe("bbc_minilm")
    assert best_metric(cfg, single) == ("f1_macro", True) and best_metric(cfg, regression) == ("rmse", False)
    for name, greater in (("eval_loss", False), ("accuracy", True)):
        cfg = load_recipe("bbc_minilm", [f"train.metric_for_best_model={name}"])
        assert best_metric(cfg, single) == (name.removeprefix("eval_"), greater)
    cfg = load_recipe("bbc_minilm", ["train.metric_for_best_model=pearson", "train.greater_is_better=true"])
    assert best_metric(cfg, regression) == ("pearson", True)


def test_pruning_callback_stops_a_trial_below_the_median_of_earlier_ones():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    first = study.ask()
    for step, value in enumerate([0.8, 0.9], 1):
        first.report(value, step)
    study.tell(first, 0.9)
    second = study.ask()
    callback = pruning_callback(second, "f1_macro")
    with pytest.raises(optuna.TrialPruned):
        callback.on_evaluate(None, None, None, metrics={"eval_f1_macro": 0.3, "eval_loss": 1.0})
    third = study.ask()
    pruning_callback(third, "f1_macro").on_evaluate(None, None, None, metrics={"eval_f1_macro": 0.95})
    assert third.user_attrs["evaluations"] == 1


def test_search_writes_trials_and_a_best_recipe_resumes_and_never_sees_test(
    tiny_models, keyword_files, tmp_path, capsys
):
    out = tmp_path / "out"
    base = [*tiny_overrides(tiny_models["bert"], keyword_files, out, **{"train.num_train_epochs": "1"}), SPACE]
    search_main(["recipe=bbc_minilm", *base, "search.n_trials=2"])
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = _read_csv(out / "search" / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert {"train.learning_rate", "mode", "lora.r", "eval_f1_macro"} <= set(rows[0])
    for row in rows:  # trials train on train, evaluate on validation, and keep no weights
        metrics = json.loads((out / "search" / f"trial_{int(row['trial']):03d}" / "metrics.json").read_text())
        assert "eval_f1_macro" in metrics and not any(k.startswith("test_") for k in metrics)
        assert float(row["eval_f1_macro"]) == pytest.approx(metrics["eval_f1_macro"])
    assert not list((out / "search").rglob("*.safetensors"))

    # an interrupted trial (left RUNNING in the study) is run again; the same command with more trials resumes
    study = optuna.load_study(study_name="bbc_minilm", storage=f"sqlite:///{out / 'search' / 'study.db'}")
    interrupted = study.ask()
    for param in parse_space(load_recipe("bbc_minilm", base).search.space):
        suggest(interrupted, param)
    search_main(["recipe=bbc_minilm", *base, "search.n_trials=3"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = _read_csv(out / "search" / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert [rows[3][k] for k in ("train.learning_rate", "mode", "lora.r")] == [
        str(interrupted.params[k]) for k in ("train.learning_rate", "mode", "lora.r")
    ]
    assert result["trials_complete"] == 3 and result["best_eval_f1_macro"] >= first["best_eval_f1_macro"]

    # best_recipe.yaml is the searched recipe with the best values, and textft-train takes it as it is
    best = load_recipe(str(out / "search" / "best_recipe.yaml"))
    assert best.train["learning_rate"] == pytest.approx(result["best_params"]["train.learning_rate"])
    assert best.mode == result["best_params"]["mode"] and best.output_dir == str(out)
    assert best.data.files.test == keyword_files["test"]

    # a changed recipe does not resume into the old study
    with pytest.raises(SystemExit):
        search_main(["recipe=bbc_minilm", *base, "data.max_length=16"])
    assert "holds a search of another recipe" in capsys.readouterr().err


def test_search_over_an_image_recipe(square_image_files, tmp_path, capsys):
    recipe = tiny_vit_recipe(square_image_files, tmp_path / "vit", tmp_path)
    space = "search.space={train.learning_rate: {type: log, low: 1.0e-3, high: 1.0e-2}}"
    search_main([f"recipe={recipe}", space, "search.n_trials=1", "train.use_cpu=true"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["trials_complete"] == 1
    assert load_recipe(str(tmp_path / "vit" / "search" / "best_recipe.yaml")).task == "image"


def test_unknown_keys_in_the_space_are_named(tiny_models, keyword_files, tmp_path, capsys):
    base = tiny_overrides(tiny_models["bert"], keyword_files, tmp_path / "out")
    with pytest.raises(SystemExit):
        search_main(["recipe=bbc_minilm", *base, "search.space={lora.rank: {type: choice, values: [4, 8]}}"])
    assert "search.space: unknown recipe key 'lora.rank'" in capsys.readouterr().err
