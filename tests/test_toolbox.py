"""The transfer-learning toolbox: per-group learning rates, gradual unfreezing, class weights, seeds, MLM adaptation.

Tiny random BERT / DistilBERT / ViT models (the MiniLM tokenizer) keep every test to seconds on a CPU.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
)

from textft.config import OptimConfig, RecipeError, TextftError, UnfreezeConfig, load_recipe
from textft.optim import GradualUnfreezing, build_optimizer, param_groups
from textft.problems.single_label import SingleLabel, cross_entropy_loss
from textft.seeds import summarize

WORDS = "market shares bank profit film actor music award election minister vote match goal team phone software".split()
QUICK = {"train.num_train_epochs": "1", "train.eval_strategy": "'no'", "train.save_strategy": "'no'"}
QUICK["train.load_best_model_at_end"] = "false"


def tiny_bert_config(**kw) -> BertConfig:
    return BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **kw
    )


@pytest.fixture(scope="session")
def tokenizer(minilm_dir):
    return AutoTokenizer.from_pretrained(minilm_dir)


def tiny_recipe(tiny_models, keyword_files, tmp_path, *extra: str) -> list[str]:
    """bbc_minilm made a seconds-long run of the tiny BERT on the keyword data, plus `extra` overrides."""
    return [*tiny_overrides(tiny_models["bert"], keyword_files, tmp_path / "out", **QUICK), *extra]


def lr_by_name(model, groups) -> dict[str, float]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["lr"] for g in groups for p in g["params"]}


# ---- per-group learning rates ----------------------------------------------------------------------------------------

LAYOUTS = {
    "bert": (
        lambda: BertForSequenceClassification(tiny_bert_config(num_labels=3)),
        {
            "classifier.weight": "head",
            "bert.pooler.dense.weight": "head",
            "bert.encoder.layer.1.output.dense.weight": 1,
        },
        {"bert.encoder.layer.0.attention.self.query.weight": 0, "bert.embeddings.word_embeddings.weight": "emb"},
    ),
    "distilbert": (
        lambda: DistilBertForSequenceClassification(
            DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64, num_labels=3)
        ),
        {
            "pre_classifier.weight": "head",
            "classifier.bias": "head",
            "distilbert.transformer.layer.1.ffn.lin1.weight": 1,
        },
        {
            "distilbert.transformer.layer.0.attention.q_lin.weight": 0,
            "distilbert.embeddings.word_embeddings.weight": "emb",
        },
    ),
    "vit": (
        lambda: ViTForImageClassification(
            ViTConfig(
                image_size=16,
                patch_size=8,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                num_labels=3,
            )
        ),
        {"classifier.weight": "head", "vit.layernorm.weight": 1, "vit.layers.1.mlp.fc2.weight": 1},
        {"vit.layers.0.attention.q_proj.weight": 0, "vit.embeddings.patch_embeddings.projection.weight": "emb"},
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_param_groups_give_head_lr_and_decay_per_layer(layout):
    build, top, low = LAYOUTS[layout]
    model = build()
    lrs = lr_by_name(model, param_groups(model, OptimConfig(head_lr=1e-3, layer_decay=0.5), 1e-4, 0.01, []))
    assert len(lrs) == len(list(model.named_parameters())), "every parameter is in exactly one group"
    expected = {"head": 1e-3, 1: 1e-4, 0: 0.5e-4, "emb": 0.25e-4}  # 2 blocks: top, top * 0.5, embeddings * 0.5^2
    for name, group in {**top, **low}.items():
        assert lrs[name] == pytest.approx(expected[group]), name


def test_trainer_optimizer_has_the_recipe_learning_rates_and_no_decay_on_norms(tmp_path):
    model = BertForSequenceClassification(tiny_bert_config(num_labels=2))
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=2e-4, weight_decay=0.1, report_to="none")
    trainer = Trainer(model=model, args=args)
    optimizer = build_optimizer(trainer, OptimConfig(head_lr=3e-3, layer_decay=0.8))
    lrs = lr_by_name(model, optimizer.param_groups)
    assert lrs["classifier.weight"] == pytest.approx(3e-3)
    assert lrs["bert.encoder.layer.1.intermediate.dense.weight"] == pytest.approx(2e-4)
    assert lrs["bert.encoder.layer.0.intermediate.dense.weight"] == pytest.approx(2e-4 * 0.8)
    assert lrs["bert.embeddings.word_embeddings.weight"] == pytest.approx(2e-4 * 0.8**2)
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert decay[id(params["bert.encoder.layer.0.output.LayerNorm.weight"])] == 0.0
    assert decay[id(params["bert.encoder.layer.0.output.dense.bias"])] == 0.0
    assert decay[id(params["bert.encoder.layer.0.output.dense.weight"])] == 0.1


# ---- gradual unfreezing ----------------------------------------------------------------------------------------------


class Snapshots(TrainerCallback):
    """A copy of chosen parameters after every optimizer step."""

    def __init__(self, model, names):
        self.params = {n: p for n, p in model.named_parameters() if n in names}
        self.steps = [{n: p.detach().clone() for n, p in self.params.items()}]

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append({n: p.detach().clone() for n, p in self.params.items()})


def changed_at(snapshots: Snapshots, name: str) -> list[int]:
    return [
        s
        for s in range(1, len(snapshots.steps))
        if not torch.equal(snapshots.steps[s][name], snapshots.steps[s - 1][name])
    ]


def test_gradual_unfreezing_trains_the_head_first_then_blocks_from_the_top(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=2))
    texts = [" ".join(random.Random(i).choices(WORDS, k=8)) for i in range(48)]
    data = [{**tokenizer(t), "label": i % 2} for i, t in enumerate(texts)]
    watched = {
        "classifier.weight": "head",
        "bert.encoder.layer.1.output.dense.weight": "top block",
        "bert.encoder.layer.0.output.dense.weight": "low block",
        "bert.embeddings.word_embeddings.weight": "embeddings",
    }
    unfreeze = GradualUnfreezing(model, UnfreezeConfig(stage_steps=2, layers_per_stage=1))
    snapshots = Snapshots(model, watched)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8, learning_rate=1e-2, weight_decay=0.1,
        warmup_steps=0, report_to="none", save_strategy="no", train_sampling_strategy="sequential",
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[unfreeze])
    trainer.callback_handler.add_callback(snapshots)
    trainer.optimizer = build_optimizer(trainer, OptimConfig())
    all_params = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert all_params == {id(p) for p in model.parameters()}, "frozen parameters are in the optimizer from the start"
    trainer.train()
    # steps 1-2: head only; 3-4: + top block; 5-6: + the lowest block and the embeddings (weight decay included)
    assert changed_at(snapshots, "classifier.weight") == [1, 2, 3, 4, 5, 6]
    assert changed_at(snapshots, "bert.encoder.layer.1.output.dense.weight") == [3, 4, 5, 6]
    assert changed_at(snapshots, "bert.encoder.layer.0.output.dense.weight") == [5, 6]
    assert changed_at(snapshots, "bert.embeddings.word_embeddings.weight") == [5, 6]
    # Adam state of a late-unfrozen parameter starts when it first gets a gradient: 2 updates, not 6
    low = dict(model.named_parameters())["bert.encoder.layer.0.output.dense.weight"]
    assert int(trainer.optimizer.state[low]["step"]) == 2


def test_gradual_unfreezing_keeps_what_the_mode_froze_frozen():
    from textft.modes import apply_mode

    model = apply_mode(BertForSequenceClassification(tiny_bert_config(num_labels=2)), "freeze_embeddings")
    unfreeze = GradualUnfreezing(model, UnfreezeConfig(stage_steps=1))
    assert not any(
        p.requires_grad for n, p in model.named_parameters() if not n.startswith(("classifier", "bert.pooler"))
    )
    unfreeze.set_stage(5)
    params = dict(model.named_parameters())
    assert params["bert.encoder.layer.0.output.dense.weight"].requires_grad
    assert not params["bert.embeddings.word_embeddings.weight"].requires_grad


# ---- class weights ---------------------------------------------------------------------------------------------------


def weighted_loss(weights: torch.Tensor, smoothing: float = 0.0):
    return cross_entropy_loss(weights, smoothing)


def class_weights(setting, labels: list[int], names: list[str]):
    return SingleLabel(names).class_weights(setting, labels)


def test_weighted_loss_equals_a_hand_computation():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 2, 1, 2])
    weights = torch.tensor([1.0, 2.0, 0.5])
    hand = 0.0
    for row, y in zip(logits.tolist(), labels.tolist(), strict=True):
        log_p = row[y] - math.log(sum(math.exp(v) for v in row))
        hand += -weights[y].item() * log_p
    loss = weighted_loss(weights)
    assert loss({"logits": logits}, labels).item() == pytest.approx(hand / 4, rel=1e-6)
    # under gradient accumulation the Trainer passes the example count of the whole accumulated batch
    assert loss({"logits": logits}, labels, num_items_in_batch=8).item() == pytest.approx(hand / 8, rel=1e-6)
    unweighted = torch.nn.functional.cross_entropy(logits, labels)
    assert weighted_loss(torch.ones(3))({"logits": logits}, labels).item() == pytest.approx(unweighted.item())


def test_trainer_loss_is_the_weighted_loss(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=3)).eval()
    batch = {**tokenizer(["bank profit", "film award", "goal team match"], padding=True, return_tensors="pt")}
    labels = torch.tensor([0, 1, 2])
    weights = torch.tensor([0.5, 1.0, 4.0])
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    trainer = Trainer(model=model, args=args, compute_loss_func=weighted_loss(weights))
    loss = trainer.compute_loss(model, {**batch, "labels": labels})
    with torch.no_grad():
        nll = torch.nn.functional.cross_entropy(model(**batch).logits, labels, reduction="none")
    assert loss.item() == pytest.approx((weights[labels] * nll).sum().item() / 3, rel=1e-5)
    assert loss.item() != pytest.approx(nll.mean().item(), rel=1e-3)


def test_class_weights_auto_balances_and_a_mapping_names_labels():
    auto = class_weights("auto", [0, 0, 0, 1], ["money", "sport"])
    assert auto.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])  # n / (classes * count)
    # a mapping is rescaled to mean weight 1 over the training examples: [1, 3] over labels [0, 1] -> mean 2
    assert class_weights({"sport": 3.0}, [0, 1], ["money", "sport"]).tolist() == [0.5, 1.5]
    assert class_weights(None, [0, 1], ["money", "sport"]) is None
    with pytest.raises(TextftError, match="data.class_weights names label 'golf'"):
        class_weights({"golf": 2.0}, [0, 1], ["money", "sport"])
    with pytest.raises(TextftError, match="class 'sport' has no training example"):
        class_weights("auto", [0, 0], ["money", "sport"])


def test_class_weights_and_label_smoothing_both_apply():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0]])
    labels = torch.tensor([0, 2, 1])
    weights = torch.tensor([1.0, 2.0, 0.5])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weights, label_smoothing=0.1, reduction="sum")
    assert weighted_loss(weights, 0.1)({"logits": logits}, labels).item() == pytest.approx(expected.item() / 3)
    assert weighted_loss(weights, 0.1)({"logits": logits}, labels).item() != pytest.approx(
        weighted_loss(weights)({"logits": logits}, labels).item()
    )


# ---- seeds -----------------------------------------------------------------------------------------------------------


def test_seed_summary_is_mean_and_sample_std():
    summary = summarize({1: {"acc": 1.0, "f1": 0.5}, 2: {"acc": 2.0, "f1": 0.5}, 3: {"acc": 4.0, "f1": 0.5}})
    assert summary["acc"]["mean"] == pytest.approx(7 / 3)
    assert summary["acc"]["std"] == pytest.approx(math.sqrt((16 / 9 + 1 / 9 + 25 / 9) / 2))
    assert summary["f1"] == {"mean": 0.5, "std": 0.0, "values": [0.5, 0.5, 0.5]}


def test_seeds_run_the_recipe_per_seed_with_the_toolbox_on_the_trainer_path(
    tmp_path, tiny_models, keyword_files, capsys
):
    from textft.train import main

    toolbox = ["seeds=[1,2]", "optim.head_lr=1e-2", "optim.layer_decay=0.9", "unfreeze.stage_steps=2"]
    main(["recipe=bbc_minilm", *tiny_recipe(tiny_models, keyword_files, tmp_path, *toolbox, "data.class_weights=auto")])
    out = tmp_path / "out"
    runs = [json.loads((out / f"seed_{s}" / "metrics.json").read_text()) for s in (1, 2)]
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["seeds"] == [1, 2]
    for key in ("test_accuracy", "test_f1_macro", "eval_loss", "train_loss"):
        values = [r[key] for r in runs]
        assert summary["metrics"][key]["values"] == values
        assert summary["metrics"][key]["mean"] == pytest.approx(sum(values) / 2)
        assert summary["metrics"][key]["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    assert "test_accuracy" in (out / "metrics_summary.md").read_text()
    assert (out / "seed_2" / "model.safetensors").is_file()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test_accuracy"] == pytest.approx(
        summary["metrics"]["test_accuracy"]["mean"], abs=1e-4
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.layer_decay=1.5", "optim.layer_decay"),
        ("optim.head_lr=0", "optim.head_lr"),
        ("seeds=[1,1]", "seeds"),
        ("data.class_weights=[1,2]", "data.class_weights"),
        ("mlm.probability=1.0", "mlm.probability"),
    ],
)
def test_bad_toolbox_values_name_the_key(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("bbc_minilm", [override])


def test_unfreeze_needs_a_mode_that_trains_the_body():
    with pytest.raises(RecipeError, match="unfreeze"):
        load_recipe("bbc_minilm", ["unfreeze.stage_steps=5", "mode=lora"])
    with pytest.raises(RecipeError, match="not both"):
        load_recipe("bbc_minilm", ["unfreeze.stage_steps=5", "unfreeze.stage_epochs=0.5"])


# ---- MLM domain adaptation -------------------------------------------------------------------------------------------


def test_adapt_writes_an_encoder_that_classification_loads(tmp_path, tiny_models, keyword_files):
    from safetensors.torch import load_file

    from textft import adapt

    source = Path(tiny_models["bert"])  # a BertModel with a pooler and no MLM head, like the offline MiniLM
    extra = ["unfreeze.stage_epochs=0.3", "optim.head_lr=1e-2", "train.num_train_epochs=2"]
    metrics = adapt.run(load_recipe("bbc_minilm_mlm", tiny_recipe(tiny_models, keyword_files, tmp_path, *extra)))
    out = tmp_path / "out"
    assert metrics["mlm_loss_after"] < metrics["mlm_loss_before"], "MLM on the domain text lowers its held-out loss"
    assert metrics["train_texts"] + metrics["held_out_texts"] == 96, "the train file's text, labels unused"
    assert json.loads((out / "metrics.json").read_text())["train_texts"] == metrics["train_texts"]
    classifier, info = AutoModelForSequenceClassification.from_pretrained(out, num_labels=2, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"], "only the new head is missing"
    source, adapted = load_file(source / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(adapted) == set(source), "same layout as the source encoder"
    assert not torch.equal(
        adapted["encoder.layer.1.output.dense.weight"], source["encoder.layer.1.output.dense.weight"]
    )
    assert torch.equal(adapted["pooler.dense.weight"], source["pooler.dense.weight"]), "MLM does not train the pooler"
    assert torch.equal(
        classifier.bert.encoder.layer[1].output.dense.weight, adapted["encoder.layer.1.output.dense.weight"]
    )
