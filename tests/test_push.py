"""textft-push on real (tiny) trained runs: the staged folder, the card, pipeline() on it, the upload call, the token."""

from __future__ import annotations

import json
import logging

import pytest
from huggingface_hub import HfApi, ModelCard

from textft.cli import parse_settings
from textft.config import TextftError
from textft.push import PushConfig, push

FAKE_TOKEN = "hf_textftTESTtokenNEVERwritten0123456789"


@pytest.fixture
def hub(monkeypatch):
    """The Hub boundary: HfApi's create_repo/create_branch/upload_folder record their calls (and the uploaded files)."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", repo_id, kwargs))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {p.name: p.read_bytes() for p in folder_path.iterdir()}
        calls.append(("upload_folder", repo_id, {**kwargs, "files": files, "token": self.token}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return calls


def run_push(model, **settings) -> dict:
    pairs = [f"model={model}", *(f"{k}={v}" for k, v in settings.items())]
    return push(parse_settings(PushConfig, pairs, "textft-push"))


def test_dry_run_stages_the_model_card_weights_and_run_files(full_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    result = run_push(full_run, repo_id="me/tiny-topics", dry_run="true", stage_dir=tmp_path / "stage")
    stage = tmp_path / "stage"
    files = {p.name for p in stage.iterdir()}
    assert set(result["files"]) == files
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "recipe.yaml", "metrics.json"} <= files
    assert "confusion_matrix.png" in files and "classification_report.json" in files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files), "safetensors only"
    assert not {"checkpoints", "adapter"} & files and all(p.is_file() for p in stage.iterdir())
    assert all(FAKE_TOKEN.encode() not in p.read_bytes() for p in stage.iterdir())

    card = ModelCard.load(stage / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-classification"
    assert "textft" in data["tags"] and data["license"] == "other"
    metrics = json.loads((full_run / "metrics.json").read_text())
    results = {(r.dataset_split, r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}
    assert results[("test", "accuracy", None)] == round(metrics["test_accuracy"], 4)
    assert results[("validation", "f1", "macro")] == round(metrics["eval_f1_macro"], 4)
    for section in ("## Training", "## Results", "## Usage", "## Limitations", "## Library versions"):
        assert section in card.text
    assert 'pipeline("text-classification", model="me/tiny-topics")' in card.text
    assert "politics, sport, tech" in card.text and "learning_rate" in card.text


def test_the_staged_folder_loads_in_pipeline_with_label_names(full_run, tmp_path):
    from transformers import pipeline

    run_push(full_run, repo_id="me/tiny-topics", dry_run="true", stage_dir=tmp_path / "stage")
    classifier = pipeline("text-classification", model=str(tmp_path / "stage"))
    scores = classifier("the team won the match", top_k=None)
    assert sorted(s["label"] for s in scores) == ["politics", "sport", "tech"]


def test_upload_sends_the_staged_folder_to_the_repo(full_run, hub):
    result = run_push(full_run, repo_id="me/tiny-topics", private="true", revision="v1")
    assert [c[0] for c in hub] == ["create_repo", "create_branch", "upload_folder"]
    assert hub[0][1] == "me/tiny-topics" and hub[0][2]["private"] is True
    _, repo_id, upload = hub[2]
    assert repo_id == "me/tiny-topics" and upload["revision"] == "v1" and upload["token"] == FAKE_TOKEN
    assert sorted(upload["files"]) == result["files"] and "model.safetensors" in upload["files"]
    assert all(FAKE_TOKEN.encode() not in content for content in upload["files"].values())


def test_lora_runs_push_the_merged_model_or_the_adapter_with_its_base(lora_run, tmp_path):
    merged = run_push(lora_run, repo_id="me/tiny-lora", dry_run="true", stage_dir=tmp_path / "merged")
    assert "model.safetensors" in merged["files"] and "adapter_config.json" not in merged["files"]

    adapter = run_push(
        lora_run, repo_id="me/tiny-lora", adapter_only="true", base_model="org/tiny-bert", dry_run="true",
        stage_dir=tmp_path / "adapter",
    )  # fmt: skip
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= set(adapter["files"])
    assert "model.safetensors" not in adapter["files"] and "config.json" not in adapter["files"]
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/tiny-bert"
    card = ModelCard.load(tmp_path / "adapter" / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == "org/tiny-bert"
    assert 'PeftModel.from_pretrained(base, "me/tiny-lora")' in card.text


def test_a_missing_token_says_how_to_log_in(full_run, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored_tokens"))
    with pytest.raises(TextftError, match=r"no Hugging Face token: run `hf auth login` or set HF_TOKEN"):
        run_push(full_run, repo_id="me/tiny-topics")


def test_bad_settings_are_one_line_errors(full_run, tmp_path):
    with pytest.raises(TextftError, match="dry_run=true needs stage_dir"):
        run_push(full_run, dry_run="true")
    with pytest.raises(TextftError, match="repo_id is required"):
        run_push(full_run)
    with pytest.raises(TextftError, match="has no adapter/ folder"):
        run_push(full_run, adapter_only="true", dry_run="true", stage_dir=tmp_path / "s")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(TextftError, match="exists and is not empty"):
        run_push(full_run, dry_run="true", stage_dir=tmp_path / "full")


def test_push_to_hub_at_the_end_of_training(trained_run, hub):
    extra = {"push_to_hub": "true", "hub.repo_id": "me/pushed-at-end", "train.num_train_epochs": "1"}
    run_dir = trained_run(**extra)
    uploads = [c for c in hub if c[0] == "upload_folder"]
    assert len(uploads) == 1 and uploads[0][1] == "me/pushed-at-end"
    assert "README.md" in uploads[0][2]["files"] and (run_dir / "metrics.json").is_file()
    assert FAKE_TOKEN not in (run_dir / "recipe.yaml").read_text()


def test_push_to_hub_needs_a_repo_and_one_run():
    from textft.config import load_recipe

    with pytest.raises(TextftError, match="'hub.repo_id' is not set"):
        load_recipe("bbc_minilm", ["push_to_hub=true"])
    with pytest.raises(TextftError, match="push every seed to one repo"):
        load_recipe("bbc_minilm", ["push_to_hub=true", "hub.repo_id=me/x", "seeds=[1,2]"])


def test_a_local_base_model_is_named_at_staging_with_how_to_link_it(full_run, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="textft"):
        run_push(full_run, repo_id="me/x", dry_run="true", stage_dir=tmp_path / "local")
    assert "is a local path, not a Hub id" in caplog.text and "base_model=ORG/NAME" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="textft"):
        run_push(full_run, repo_id="me/x", base_model="org/tiny-bert", dry_run="true", stage_dir=tmp_path / "hub")
    assert "not a Hub id" not in caplog.text
