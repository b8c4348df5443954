"""The architecture matrix: a tiny random model of every supported family x every mode trains one step through
textft's own run(), saves, and reloads with pipeline() to the same predictions; LoRA's merged export and its adapter
directory both load. Optimiser options (head_lr, layer_decay, gradual unfreezing) ride along; where one cannot apply
(layer decay on ALBERT's one shared layer) the error is one line that says why.

Every text family shares the MiniLM tokenizer (decoders: a copy without a pad token, as Llama's ships), every body is
hidden 32 (or smaller), 2 layers, so a whole run takes about a second.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from textft.config import TextftError, load_recipe
from textft.modes import apply_mode, embedding_modules, head_module_names

V = 30522  # the MiniLM (BERT uncased) vocabulary
TXT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
DEC = {**TXT, "num_key_value_heads": 1, "vocab_size": V, "max_position_embeddings": 128}
VIT = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}


def tiny_config(family: str):
    """A tiny random config of a family (transformers' config classes; sizes only, everything else default)."""
    import transformers as T

    return {
        "bert": lambda: T.BertConfig(vocab_size=V, **TXT),
        "distilbert": lambda: T.DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=2, hidden_dim=64),
        "roberta": lambda: T.RobertaConfig(vocab_size=V, pad_token_id=0, **TXT),
        "xlm-roberta": lambda: T.XLMRobertaConfig(vocab_size=V, pad_token_id=0, **TXT),
        "deberta-v2": lambda: T.DebertaV2Config(vocab_size=V, **TXT),
        "electra": lambda: T.ElectraConfig(vocab_size=V, embedding_size=16, **TXT),
        "modernbert": lambda: T.ModernBertConfig(
            vocab_size=V,
            pad_token_id=0,
            bos_token_id=101,
            eos_token_id=102,
            cls_token_id=101,
            sep_token_id=102,
            global_attn_every_n_layers=2,
            local_attention=16,
            **TXT,
        ),  # fmt: skip
        "albert": lambda: T.AlbertConfig(vocab_size=V, embedding_size=16, **TXT),
        "gpt2": lambda: T.GPT2Config(
            vocab_size=V, n_embd=32, n_layer=2, n_head=2, n_positions=128, bos_token_id=102, eos_token_id=102
        ),
        "llama": lambda: T.LlamaConfig(**DEC),
        "qwen2": lambda: T.Qwen2Config(**DEC),
        "qwen3": lambda: T.Qwen3Config(head_dim=16, **DEC),
        "mistral": lambda: T.MistralConfig(**DEC),
        "gemma": lambda: T.GemmaConfig(head_dim=16, **DEC),
        "vit": lambda: T.ViTConfig(**VIT, intermediate_size=64),
        "deit": lambda: T.DeiTConfig(**VIT, intermediate_size=64),
        "dinov2": lambda: T.Dinov2Config(**VIT),
        "swin": lambda: T.SwinConfig(
            image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4
        ),
        "convnext": lambda: T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
        "resnet": lambda: T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]),
    }[family]()


ENCODERS = ["bert", "distilbert", "roberta", "xlm-roberta", "deberta-v2", "electra", "modernbert", "albert"]
DECODERS = ["gpt2", "llama", "qwen2", "qwen3", "mistral", "gemma"]
HAS_PAD = ["qwen2"]  # as Qwen's tokenizers: a pad token, but none in the model config
VISION = ["vit", "deit", "swin", "dinov2", "convnext", "resnet"]
FAMILIES = ENCODERS + DECODERS + VISION
MODES = ["full", "freeze_embeddings", "head_only", "lora"]
# the optimiser options each mode's run adds: all three where they apply, so every family x option runs once
OPTIONS = {
    "freeze_embeddings": {"optim.head_lr": "1e-2", "optim.layer_decay": "0.8", "unfreeze.stage_steps": "1"},
    "lora": {"optim.head_lr": "1e-2", "optim.layer_decay": "0.8"},
}
COLORS = {"blue": (20, 30, 160), "red": (250, 80, 60)}
TEXTS = ["the football match was won", "a new computer chip", "the election results are in", "of and the"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: a second thread only spins (measured here: 19 ms per tiny linear layer with 2 threads under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory, minilm_dir) -> dict[str, Path]:
    """Each family's tiny body (no head, as a user's pretrained checkpoint) saved with its tokenizer/image processor."""
    from transformers import AutoModel, AutoTokenizer

    from textft.images import scratch_image_processor

    root = tmp_path_factory.mktemp("families")
    tokenizers = {"encoder": AutoTokenizer.from_pretrained(minilm_dir)}
    for kind in ("decoder", "decoder_with_pad"):
        # as Llama/Mistral ship: an eos token, no pad token, no token_type_ids (Qwen: a pad token too)
        tokenizers[kind] = AutoTokenizer.from_pretrained(minilm_dir)
        tokenizers[kind].eos_token = "[SEP]"
        tokenizers[kind].model_input_names = ["input_ids", "attention_mask"]
    tokenizers["decoder"].pad_token = None
    dirs = {}
    for family in FAMILIES:
        torch.manual_seed(0)
        path = root / family
        AutoModel.from_config(tiny_config(family)).save_pretrained(path)
        if family in VISION:
            scratch_image_processor("vit", 32).save_pretrained(path)
        else:
            kind = "encoder" if family not in DECODERS else "decoder_with_pad" if family in HAS_PAD else "decoder"
            tokenizers[kind].save_pretrained(path)
        dirs[family] = path
    return dirs


@pytest.fixture(scope="session")
def image_files(tmp_path_factory) -> dict[str, str]:
    """Tiny red-ish vs blue-ish images as an imagefolder (train) and a second folder (test)."""
    rng = random.Random(0)
    out = {}
    for split, n in (("train", 16), ("test", 6)):
        root = tmp_path_factory.mktemp(f"images_{split}")
        for label, color in COLORS.items():
            (root / label).mkdir()
            for i in range(n):
                pixel = tuple(min(255, max(0, c + rng.randint(-25, 25))) for c in color)
                Image.new("RGB", (32, 32), pixel).save(root / label / f"{i}.png")
        out[split] = str(root)
    return out


def recipe(family: str, mode: str, model_dir: Path, out: Path, keyword_files, image_files, **extra: str):
    common = {
        "model.name_or_path": str(model_dir),
        "mode": mode,
        "output_dir": str(out),
        "train.use_cpu": "true",
        "train.max_steps": "2" if "unfreeze.stage_steps" in extra else "1",
        "train.per_device_train_batch_size": "8",
        "train.learning_rate": "1e-3",
        "train.warmup_steps": "0",  # else the one step runs at learning rate 0
        "train.eval_strategy": "no",
        "train.save_strategy": "no",
        "train.load_best_model_at_end": "false",
        **extra,
    }
    if family in VISION:
        data = {"data.dataset": image_files["train"], "data.files.train": "null", "data.files.test": "null"}
        data.update({"data.val_split": "0.25", "data.test_split": "0.25", "image.horizontal_flip": "false"})
        base = "mnist_vit_transfer"
    else:
        data = {"data.files.train": keyword_files["train"], "data.files.test": keyword_files["test"]}
        data.update({"data.max_length": "32", "data.max_train_samples": "32", "data.max_eval_samples": "16"})
        base = "bbc_minilm"
    return load_recipe(base, [f"{k}={v}" for k, v in {**data, **common}.items()])


def model_inputs(family: str, processor, image_files) -> list[dict]:
    """One input per example (no padding), for the in-memory model and pipeline() alike."""
    if family in VISION:
        images = sorted(Path(image_files["test"]).rglob("*.png"))[::3]
        return [processor(Image.open(p).convert("RGB"), return_tensors="pt") for p in images]
    return [processor(text, return_tensors="pt") for text in TEXTS]


def pipeline_inputs(family: str, image_files) -> list:
    if family in VISION:
        return [Image.open(p).convert("RGB") for p in sorted(Path(image_files["test"]).rglob("*.png"))[::3]]
    return TEXTS


def probabilities(model, inputs: list[dict]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(**x).logits.softmax(-1) for x in inputs])


def pipeline_probabilities(pipe, inputs: list, label_names: list[str]) -> torch.Tensor:
    rows = [{d["label"]: d["score"] for d in out} for out in pipe(inputs, top_k=None)]
    return torch.tensor([[row[name] for name in label_names] for row in rows])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_saves_and_reloads_to_the_same_predictions(
    family, mode, family_dirs, keyword_files, image_files, tmp_path, monkeypatch
):
    from transformers import pipeline

    import textft.train
    from textft.inference import load_classifier
    from textft.predict import PredictConfig

    # fp32: under bf16 (auto, on a CPU with native bf16) accelerate leaves the trained model's forward in autocast, so
    # the in-memory predictions would differ from the saved model's fp32 ones by bf16 rounding, not by a saving bug
    options = {"train.bf16": "false", **OPTIONS.get(mode, {})}
    if family in DECODERS and mode == "lora":  # activation checkpointing through frozen layers into the adapters
        options["train.gradient_checkpointing"] = "true"
    cfg = recipe(family, mode, family_dirs[family], tmp_path / "run", keyword_files, image_files, **options)
    if family == "albert" and "optim.layer_decay" in options:
        with pytest.raises(TextftError, match="optim.layer_decay: .*ALBERT shares one encoder layer across all depths"):
            textft.train.run(cfg)
        cfg = recipe(family, mode, family_dirs[family], tmp_path / "run", keyword_files, image_files, **{
            k: v for k, v in options.items() if k != "optim.layer_decay"
        })  # fmt: skip

    trained = {}
    save_model = textft.train.save_model

    def record_then_save(model, processor, cfg, target):  # the in-memory model's predictions, before saving
        trained["probs"] = probabilities(model, model_inputs(family, processor, image_files))
        trained["trainable"] = {n for n, p in model.named_parameters() if p.requires_grad}
        trained["lora_b_moved"] = any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
        save_model(model, processor, cfg, target)

    monkeypatch.setattr(textft.train, "save_model", record_then_save)
    metrics = textft.train.run(cfg)
    out = Path(cfg.output_dir)

    assert math.isfinite(metrics["train_loss"])
    assert 0 < metrics["trainable_params"] <= metrics["total_params"]
    if mode != "full":
        assert metrics["trainable_params"] < metrics["total_params"]
    task = "image-classification" if family in VISION else "text-classification"
    pipe = pipeline(task, model=str(out), device="cpu")
    labels = [pipe.model.config.id2label[i] for i in range(pipe.model.config.num_labels)]
    assert set(labels) == (set(COLORS) if family in VISION else {"sport", "tech", "politics"})
    inputs = pipeline_inputs(family, image_files)
    torch.testing.assert_close(pipeline_probabilities(pipe, inputs, labels), trained["probs"], atol=1e-5, rtol=1e-4)
    if family in DECODERS:  # the pad token (eos where the tokenizer had none) is saved in the tokenizer and config
        assert pipe.tokenizer.pad_token == ("[PAD]" if family in HAS_PAD else "[SEP]")
        assert pipe.model.config.pad_token_id == pipe.tokenizer.pad_token_id
    if mode == "lora":  # the adapter directory (base + adapter, merged on load) predicts alike
        model, processor = load_classifier(
            out / "adapter", "image" if family in VISION else "text", PredictConfig(dtype="float32")
        )
        adapter_probs = probabilities(model, model_inputs(family, processor, image_files))
        torch.testing.assert_close(adapter_probs, trained["probs"], atol=1e-5, rtol=1e-4)
        assert trained["trainable"] and all("lora_" in n or "modules_to_save" in n for n in trained["trainable"])
        assert trained["lora_b_moved"]  # LoRA's B starts at zero: the step reached the adapters


def classifier(family: str, family_dirs):
    from transformers import AutoConfig, AutoModelForImageClassification, AutoModelForSequenceClassification

    from textft.model import _trainable_class

    auto = AutoModelForImageClassification if family in VISION else AutoModelForSequenceClassification
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(family_dirs[family], num_labels=3, pad_token_id=0)
    _trainable_class(config)
    return auto.from_pretrained(family_dirs[family], config=config)


@pytest.mark.parametrize("family", FAMILIES)
def test_freeze_embeddings_and_head_only_freeze_what_they_name(family, family_dirs):
    model = apply_mode(classifier(family, family_dirs), "freeze_embeddings")
    frozen = {id(p) for m in embedding_modules(model) for p in m.parameters()}
    assert frozen and all(not p.requires_grad for p in model.parameters() if id(p) in frozen)
    assert all(p.requires_grad for p in model.parameters() if id(p) not in frozen)

    model = apply_mode(classifier(family, family_dirs), "head_only")
    head = {id(p) for name in head_module_names(model) for p in model.get_submodule(name).parameters()}
    assert {id(p) for p in model.parameters() if p.requires_grad} == head


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_groups_give_each_depth_its_learning_rate(family, family_dirs):
    """head_lr for the head, train.learning_rate for the top block, x0.5 per block below, the embeddings lowest."""
    from textft.config import OptimConfig
    from textft.optim import HEAD, depth_groups, param_groups

    model = classifier(family, family_dirs)
    optim = OptimConfig(head_lr=1.0, layer_decay=0.5)
    if family == "albert":
        with pytest.raises(TextftError, match="ALBERT shares one encoder layer"):
            param_groups(model, optim, 0.1, 0.0, [])
        optim = OptimConfig(head_lr=1.0)
    groups, num_layers = depth_groups(model)
    assert num_layers == (0 if family == "albert" else 2)
    lr_of = {name: g["lr"] for g in param_groups(model, optim, 0.1, 0.0, []) for name in g["names"]}
    heads = tuple(f"{n}." for n in head_module_names(model))
    assert {n for n, g in groups.items() if g == HEAD} == {
        n for n, _ in model.named_parameters() if n.startswith(heads)
    }
    assert {lr_of[n] for n, g in groups.items() if g == HEAD} == {1.0}
    if family != "albert":
        assert {lr_of[n] for n, g in groups.items() if g == 1} == {0.1}
        assert {lr_of[n] for n, g in groups.items() if g == 0} == {0.05}
        assert {lr_of[n] for n, g in groups.items() if g == "embeddings"} == {0.025}


def test_lora_targets_per_family(family_dirs):
    from textft.config import LoraConfig
    from textft.modes import lora_targets

    expected = {
        "bert": ["query", "value"],
        "albert": ["query", "value"],
        "deberta-v2": ["query_proj", "value_proj"],
        "modernbert": ["Wqkv"],
        "gpt2": ["c_attn"],
        "qwen2": ["q_proj", "v_proj"],
        "swin": ["q_proj", "v_proj"],
    }
    for family, targets in expected.items():
        assert lora_targets(classifier(family, family_dirs), LoraConfig()) == targets, family
    convs = lora_targets(classifier("convnext", family_dirs), LoraConfig())
    assert convs and not [n for n in convs if "dwconv" in n or "embeddings" in n or "classifier" in n]
    assert lora_targets(classifier("resnet", family_dirs), LoraConfig())[0].startswith("resnet.encoder.")


def test_a_new_head_is_one_log_line_and_any_other_missing_weight_keeps_the_load_report(family_dirs, tmp_path, caplog):
    from transformers import AutoModel

    from textft.model import build_model

    def load(path: Path) -> str:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            build_model(load_recipe("bbc_minilm", [f"model.name_or_path={path}"]), ["a", "b"])
        return caplog.text

    text = load(family_dirs["bert"])
    assert "new classifier head, initialised randomly: bert.pooler" not in text  # the pooler was in the checkpoint
    assert "new classifier head, initialised randomly: classifier.bias, classifier.weight" in text
    assert "LOAD REPORT" not in text

    body = AutoModel.from_pretrained(family_dirs["bert"])
    state = {k: v for k, v in body.state_dict().items() if "layer.1.output.dense" not in k}
    body.save_pretrained(tmp_path / "damaged", state_dict=state)
    text = load(tmp_path / "damaged")
    assert "LOAD REPORT" in text and "new classifier head" not in text


@pytest.mark.parametrize("family", ["albert", "resnet"])
def test_gradient_checkpointing_on_a_family_without_it_is_a_one_line_error(family, family_dirs):
    from textft.model import check_training_options

    cfg = load_recipe("bbc_minilm", ["train.gradient_checkpointing=true"])
    with pytest.raises(TextftError, match=r"train.gradient_checkpointing: \w+ does not support it"):
        check_training_options(classifier(family, family_dirs), cfg)
    check_training_options(classifier("llama", family_dirs), cfg)
