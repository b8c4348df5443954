"""Problem types: multi-label (three layouts, thresholds, BCE) and regression (standardised targets folded into the head)
through data, loss, metrics, train, pipeline() and textft-predict, on tiny models trained on generated data."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FILLER, tiny_overrides, write_csv

from textft.cli import parse_settings
from textft.config import RecipeError, TextftError, load_recipe
from textft.data import load_splits
from textft.predict import PredictConfig, predict
from textft.problems import MultiLabel, Regression, SingleLabel
from textft.train import run

KEYWORDS = {"sport": "football", "tech": "computer", "politics": "election"}


def multi_rows(n: int, seed: int) -> list[dict]:
    """Each row holds the keywords of 0-3 topics; its labels are exactly those topics."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topics = sorted(rng.sample(list(KEYWORDS), k=[0, 1, 1, 2, 2, 3][i % 6]))
        words = rng.choices(FILLER, k=rng.randint(2, 8)) + [KEYWORDS[t] for t in topics] * 2
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": topics})
    return rows


def regression_rows(n: int, seed: int) -> list[dict]:
    """The target is 100 + 10 x (times 'football' occurs) + 0.25: far from 0, so the target scaling must work."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        count = rng.randint(0, 3)
        words = rng.choices(FILLER, k=rng.randint(4, 12)) + ["football"] * count
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "score": 100.25 + 10.0 * count})
    return rows


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def recipe(files: dict, *overrides: str):
    items = {"data.files.test": "null", **{f"data.files.{k}": str(v) for k, v in files.items()}}
    return load_recipe("bbc_minilm", [*(f"{k}={v}" for k, v in items.items()), *overrides])


# ---- data: the three multi-label layouts, detection, errors ------------------------------------------------------------


def test_the_three_multi_label_layouts_give_the_same_multi_hot_labels(tmp_path):
    rows = multi_rows(24, seed=0)
    as_list = write_jsonl(tmp_path / "list.jsonl", rows)
    as_string = write_csv(tmp_path / "string.csv", [{"text": r["text"], "labels": "|".join(r["labels"])} for r in rows])
    as_columns = write_csv(
        tmp_path / "columns.csv", [{"text": r["text"], **{t: int(t in r["labels"]) for t in KEYWORDS}} for r in rows]
    )
    common = ["data.val_split=0.25", "data.label_column=labels"]
    encoded = []
    for path, extra in (
        (as_list, []),
        (as_string, ["data.label_separator=|"]),
        (as_columns, ["data.label_columns=[politics,sport,tech]"]),
    ):
        cfg = recipe({"train": path}, *common, *extra)
        splits, problem = load_splits(cfg)
        assert cfg.data.problem_type == "multi_label" and isinstance(problem, MultiLabel)
        assert problem.label_names == ["politics", "sport", "tech"]
        both = {tuple(r["text"] for r in splits[s]): splits[s]["label"] for s in ("train", "validation")}
        encoded.append(both)
    assert encoded[0] == encoded[1] == encoded[2]
    train = list(encoded[0].values())[0]
    assert [0.0, 0.0, 0.0] in train  # a row without labels is a valid all-negative row


def test_problem_type_is_detected_from_the_label_column(tmp_path):
    single = write_csv(tmp_path / "s.csv", [{"text": f"t {i}", "label": ["a", "b"][i % 2]} for i in range(20)])
    floats = write_csv(tmp_path / "r.csv", [{"text": f"t {i}", "label": i * 0.37} for i in range(20)])
    whole = write_csv(tmp_path / "w.csv", [{"text": f"t {i}", "label": float(i % 3)} for i in range(30)])
    assert isinstance(load_splits(recipe({"train": single}))[1], SingleLabel)
    cfg = recipe({"train": floats})
    assert isinstance(load_splits(cfg)[1], Regression) and cfg.data.problem_type == "regression"
    assert load_splits(recipe({"train": whole}))[1].label_names == ["0", "1", "2"]  # 0.0/1.0/2.0 are classes


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        (
            [{"text": "x", "label": "sport|tech"}, {"text": "y", "label": "sport"}] * 6,
            [],
            "value 'sport|tech' looks like several labels; for multi-label set data.label_separator='|'",
        ),
        (
            [{"text": "x", "label": "1.5"}, {"text": "y", "label": "two"}] * 6,
            ["data.problem_type=regression"],
            "data.label_column 'label': row 2 of",
        ),
    ],
)
def test_bad_labels_are_one_line_errors_naming_row_column_and_value(tmp_path, rows, extra, message):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(TextftError) as err:
        load_splits(recipe({"train": path}, *extra))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_label_unseen_in_train_names_the_split_row_and_value(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", multi_rows(24, seed=0))
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "a", "labels": ["sport"]}, {"text": "b", "labels": ["golf"]}])
    with pytest.raises(TextftError, match=r"label 'golf' in .*test.jsonl \(row 2, column 'labels'\) never appears"):
        load_splits(recipe({"train": train, "test": test}, "data.label_column=labels"))


def test_recipe_errors_for_the_label_keys():
    with pytest.raises(RecipeError, match="'data.thresholds' is 1.5"):
        recipe({"train": "x.csv"}, "data.thresholds=1.5")
    with pytest.raises(RecipeError, match="'data.label_separator' is for multi-label data"):
        recipe({"train": "x.csv"}, "data.label_separator=|", "data.problem_type=regression")
    with pytest.raises(RecipeError, match="'data.problem_type' is 'ordinal'"):
        recipe({"train": "x.csv"}, "data.problem_type=ordinal")


def test_carved_splits_keep_label_combinations_and_target_range_and_ignore_the_training_seed(tmp_path):
    rows = multi_rows(120, seed=1)
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    splits, problem = load_splits(recipe({"train": path}, "data.label_column=labels", "data.test_split=0.25", "seed=7"))
    train, test = np.asarray(splits["train"]["label"]), np.asarray(splits["test"]["label"])
    assert abs(train.mean(axis=0) - test.mean(axis=0)).max() < 0.08  # each label keeps its share
    again, _ = load_splits(recipe({"train": path}, "data.label_column=labels", "data.test_split=0.25", "seed=8"))
    assert again["test"]["text"] == splits["test"]["text"]  # data.split_seed, not seed, decides the split

    reg = write_csv(tmp_path / "reg.csv", [{"text": f"t{i}", "y": i + 0.5} for i in range(200)])
    splits, _ = load_splits(recipe({"train": reg}, "data.label_column=y", "data.test_split=0.2"))
    quartiles = np.quantile(splits["test"]["label"], [0.25, 0.75])
    assert 35 < quartiles[0] < 65 and 135 < quartiles[1] < 165  # the carved test spans the whole target range


# ---- loss, metrics, thresholds -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["multi_label", "regression"])
def test_gradient_accumulation_gives_the_same_loss_and_gradients_as_one_big_batch(tmp_path, tiny_models, kind):
    """1 x batch 16 and 4 x batch 4, through the Trainer's own training step, give the same update."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["bert"])
    if kind == "multi_label":
        rows = multi_rows(16, seed=3)
        labels = [[float(t in r["labels"]) for t in KEYWORDS] for r in rows]
        problem = MultiLabel(list(KEYWORDS))
    else:
        rows = regression_rows(16, seed=3)
        labels = [r["score"] for r in rows]
        problem = Regression(["score"], mean=110.0, std=9.0)
    from datasets import Dataset

    data = Dataset.from_dict({**tokenizer([r["text"] for r in rows]), "label": labels})
    updated = []
    for batch, steps in ((16, 1), (4, 4)):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_models["bert"],
            num_labels=problem.num_labels,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        model.accepts_loss_kwargs = False
        args = TrainingArguments(
            output_dir=str(tmp_path / f"b{batch}"), per_device_train_batch_size=batch, gradient_accumulation_steps=steps,
            max_steps=1, learning_rate=0.1, optim="sgd", weight_decay=0.0, lr_scheduler_type="constant",
            report_to="none", use_cpu=True, save_strategy="no", train_sampling_strategy="sequential", logging_steps=1,
        )  # fmt: skip
        from transformers import DataCollatorWithPadding

        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_loss_func=problem.loss(labels, load_recipe("bbc_minilm").data),
        )
        trainer.train()
        updated.append(
            ({k: v.detach().clone() for k, v in model.named_parameters()}, trainer.state.log_history[0]["loss"])
        )
    (big, big_loss), (small, small_loss) = updated
    assert small_loss == pytest.approx(big_loss, rel=1e-4)
    for name, value in big.items():
        torch.testing.assert_close(small[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_thresholds_are_tuned_per_label_on_validation():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(400, 2))
    # label 0 is scored high (positives ~0.8, negatives ~0.6): its best threshold is near 0.7, not 0.5
    p0 = np.where(y[:, 0] == 1, 0.8, 0.6) + rng.normal(0, 0.03, 400)
    p1 = np.where(y[:, 1] == 1, 0.7, 0.3) + rng.normal(0, 0.03, 400)
    problem = MultiLabel(["a", "b"])
    probs = np.stack([p0, p1], axis=1)
    problem.calibrate(probs, y, "tune")
    assert 0.62 <= problem.thresholds[0] <= 0.78 and 0.35 <= problem.thresholds[1] <= 0.65
    tuned = problem.metrics(probs, y, problem.thresholds)
    at_half = problem.metrics(probs, y, [0.5, 0.5])
    assert tuned["f1_micro"] > at_half["f1_micro"] + 0.1
    problem.calibrate(probs, y, {"a": 0.9})
    assert problem.thresholds == [0.9, 0.5]


def test_multi_label_and_regression_metrics_have_the_documented_keys():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6], [0.2, 0.1]])
    keys = set(MultiLabel(["a", "b"]).metrics(p, y, [0.5, 0.5]))
    assert keys == {"f1_micro", "f1_macro", "f1_samples", "precision_micro", "recall_micro", "subset_accuracy",
                    "hamming_loss", "roc_auc_macro", "average_precision_macro"}  # fmt: skip
    from textft.metrics import RegressionMetrics

    out = RegressionMetrics().compute(predictions=[1.0, 2.0, 3.5], references=[1.0, 2.5, 3.0])
    assert set(out) == {"mse", "rmse", "mae", "pearson", "spearman", "r2"} and out["rmse"] == pytest.approx(
        0.5**0.5 / 3**0.5 * 1
    )
    assert Regression(["y"]).greater_is_better("rmse") is False and MultiLabel(["a"]).greater_is_better("f1_micro")


# ---- end to end: train -> artifacts -> pipeline() -> textft-predict ---------------------------------------------------


@pytest.fixture(scope="module")
def small_bert(tmp_path_factory, minilm_dir) -> str:
    """A small random BERT (seeded, so the learning tests do not depend on the test order), MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128)  # fmt: skip
    path = tmp_path_factory.mktemp("small_bert")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def multi_label_run(small_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    files = {
        "train": write_jsonl(root / "train.jsonl", multi_rows(180, seed=0)),
        "test": write_jsonl(root / "test.jsonl", multi_rows(48, seed=1)),
    }
    out = root / "run"
    # fp32 (train.bf16=false, predict dtype=float32): the test compares a prediction file with metrics.json exactly
    overrides = tiny_overrides(small_bert, files, out, **{"data.label_column": "labels", "train.bf16": "false",
                               "train.num_train_epochs": "6", "train.learning_rate": "3e-3",
                               "data.class_weights": "auto"})  # fmt: skip
    cfg = load_recipe("bbc_minilm", overrides)
    return out, run(cfg)


def test_multi_label_run_learns_saves_thresholds_and_pipeline_applies_sigmoid(multi_label_run):
    from transformers import pipeline

    out, metrics = multi_label_run
    assert metrics["problem_type"] == "multi_label" and metrics["test_f1_micro"] > 0.8, metrics
    assert {"test_f1_micro_at_0.5", "test_hamming_loss", "test_roc_auc_macro", "eval_f1_samples"} <= set(metrics)
    config = json.loads((out / "config.json").read_text())
    info = json.loads((out / "inference.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert list(config["thresholds"]) == ["politics", "sport", "tech"] and info["thresholds"] == list(
        config["thresholds"].values()
    )
    assert json.loads((out / "thresholds.json").read_text()) == config["thresholds"]
    assert load_recipe(str(out / "recipe.yaml")).data.problem_type == "multi_label"
    report = json.loads((out / "classification_report.json").read_text())
    assert {"precision", "recall", "f1-score", "support", "threshold"} <= set(report["sport"])

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    text = "football at the election in football"
    scores = pipeline("text-classification", model=str(out), top_k=None)([text])[0]
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        logits = model(**AutoTokenizer.from_pretrained(out)(text, return_tensors="pt")).logits[0]
    sigmoid = dict(zip(["politics", "sport", "tech"], torch.sigmoid(logits).tolist(), strict=True))
    assert {s["label"]: s["score"] for s in scores} == pytest.approx(sigmoid, abs=1e-6)  # sigmoid, not softmax


def test_multi_label_predict_writes_labels_with_the_runs_thresholds_and_scores_what_metrics_say(
    multi_label_run, tmp_path
):
    out, metrics = multi_label_run
    test = pd.read_json(out.parent / "test.jsonl", lines=True)
    for suffix in ("jsonl", "csv"):
        scored_path = tmp_path / f"scored.{suffix}"
        predict(parse_settings(PredictConfig, [f"model={out}", f"input={out.parent / 'test.jsonl'}",
                                               f"output={scored_path}", "progress=false", "dtype=float32"],
                                 "textft-predict"))  # fmt: skip
        scored = pd.read_json(scored_path, lines=True) if suffix == "jsonl" else pd.read_csv(scored_path)
        predicted = list(scored["pred_labels"])
        if suffix == "csv":
            predicted = [[] if pd.isna(v) else v.split("|") for v in predicted]
        assert len(scored) == len(test)
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarize = MultiLabelBinarizer(classes=["politics", "sport", "tech"])
    f1 = f1_score(binarize.fit_transform(test["labels"]), binarize.transform(predicted), average="micro")
    assert f1 == pytest.approx(metrics["test_f1_micro"], abs=1e-6)


def test_regression_run_predicts_in_the_original_units_everywhere(small_bert, tmp_path):
    from transformers import pipeline

    files = {
        "train": write_csv(tmp_path / "train.csv", regression_rows(200, seed=0)),
        "test": write_csv(tmp_path / "test.csv", regression_rows(50, seed=1)),
    }
    out = tmp_path / "run"
    cfg = load_recipe("bbc_minilm", tiny_overrides(small_bert, files, out, **{"data.label_column": "score", "train.bf16": "false",
                      "train.num_train_epochs": "6", "train.learning_rate": "3e-3"}))  # fmt: skip
    metrics = run(cfg)
    targets = pd.read_csv(files["test"])["score"]
    assert cfg.data.problem_type == "regression" and metrics["test_rmse"] < 0.6 * targets.std(), metrics
    assert metrics["test_pearson"] > 0.8 and {"test_mae", "test_spearman", "test_r2", "test_mse"} <= set(metrics)
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    assert (out / "predicted_vs_true.png").stat().st_size > 0 and (out / "regression_report.json").is_file()

    value = pipeline("text-classification", model=str(out), function_to_apply="none")("football football football")
    assert 115 < value[0]["score"] < 145  # original units (the true value is 130.25), not standardised ones
    scored = tmp_path / "scored.parquet"
    predict(parse_settings(PredictConfig, [f"model={out}", f"input={files['test']}", f"output={scored}",
                                           "progress=false", "dtype=float32"], "textft-predict"))  # fmt: skip
    predicted = pd.read_parquet(scored)["value"]
    rmse = float(np.sqrt(((predicted - targets) ** 2).mean()))
    assert rmse == pytest.approx(metrics["test_rmse"], rel=1e-3)


def test_class_weights_are_refused_for_regression(tiny_models, tmp_path):
    files = {"train": write_csv(tmp_path / "train.csv", regression_rows(40, seed=0))}
    cfg = load_recipe("bbc_minilm", [f"data.files.train={files['train']}", "data.label_column=score",
                                     "data.class_weights=auto", f"model.name_or_path={tiny_models['bert']}",
                                     "data.files.test=null",
                                     f"output_dir={tmp_path / 'out'}"])  # fmt: skip
    with pytest.raises(TextftError, match="data.class_weights does not apply to regression"):
        run(cfg)


def test_model_card_of_a_multi_label_run_states_the_problem_type_thresholds_and_metrics(multi_label_run, tmp_path):
    from huggingface_hub import ModelCard

    from textft.push import PushConfig, push

    out, metrics = multi_label_run
    settings = [f"model={out}", "repo_id=me/topics", "dry_run=true", f"stage_dir={tmp_path / 'stage'}"]
    push(parse_settings(PushConfig, settings, "textft-push"))
    card = ModelCard.load(tmp_path / "stage" / "README.md")
    assert "multi-label classifier" in card.text and "| sport |" in card.text and "config.thresholds" in card.text
    assert f"{metrics['test_f1_micro']:.4f}" in card.text and "F1 (micro)" in card.text
    assert (tmp_path / "stage" / "inference.json").is_file()


# ---- the real pretrained MiniLM on real text (BBC rows built by textft.assets) ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["multi_label", "regression"])
def test_real_minilm_learns_each_problem_type_on_real_bbc_text(minilm_dir, tmp_path, kind):
    """A small budget (240 rows, 128 tokens, 2 epochs, the head at 1e-3): well above what no learning gives."""
    from textft.assets import prepare_bbc_multilabel, prepare_bbc_regression

    prepare = prepare_bbc_multilabel if kind == "multi_label" else prepare_bbc_regression
    files = prepare(tmp_path / "data", n_train=240, n_test=120)
    recipe = "bbc_multilabel_minilm" if kind == "multi_label" else "bbc_regression_minilm"
    cfg = load_recipe(recipe, [f"model.name_or_path={minilm_dir}", f"data.files.train={files['train_jsonl']}",
                               f"data.files.test={files['test_jsonl']}", "data.max_length=128",
                               "train.num_train_epochs=2", "optim.head_lr=1e-3", "train.per_device_train_batch_size=8",
                               f"output_dir={tmp_path / 'run'}"])  # fmt: skip
    metrics = run(cfg)
    if kind == "multi_label":
        # predicting every label scores micro-F1 ~0.5 here (1.7 of 5 topics per row); predicting none scores 0
        assert metrics["test_f1_micro"] > 0.65 and metrics["test_roc_auc_macro"] > 0.8, metrics  # measured: 0.72, 0.85
    else:
        # the target is 5 x the share of sport sentences (0..5); a constant prediction has R2 <= 0
        assert metrics["test_pearson"] > 0.6 and metrics["test_r2"] > 0.3, metrics


def test_regression_scaling_folds_into_the_lora_head_the_merged_model_and_the_adapter(tiny_models, tmp_path):
    """Folding reaches the head LoRA trains (modules_to_save): merged weights and adapter directory give original units."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textft.config import LoraConfig
    from textft.modes import apply_mode

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["bert"])
    batch = tokenizer(["the football match", "a new computer"], padding=True, return_tensors="pt")
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=1).eval()
    model = apply_mode(base, "lora", LoraConfig()).eval()
    with torch.no_grad():
        standardised = model(**batch).logits
    problem = Regression(["score"], mean=100.0, std=10.0)
    problem.finalize(model)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, standardised * 10 + 100)
    model.save_pretrained(tmp_path / "adapter")
    from peft import PeftModel

    reloaded = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=1), tmp_path / "adapter"
    ).eval()
    merged = model.merge_and_unload().eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, standardised * 10 + 100)
        torch.testing.assert_close(merged(**batch).logits, standardised * 10 + 100)
