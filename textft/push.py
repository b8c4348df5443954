"""textft-push: publish a finished run to the Hugging Face Hub with a model card.

    textft-push model=outputs/bbc_minilm repo_id=me/bbc-minilm
    textft-push model=outputs/bbc_minilm_lora repo_id=me/bbc-minilm-lora adapter_only=true base_model=org/base
    textft-push model=outputs/bbc_minilm repo_id=me/bbc-minilm dry_run=true stage_dir=/tmp/stage   # uploads nothing

The run's files are staged into one folder (weights as safetensors, config with id2label, tokenizer or image processor,
recipe.yaml, metrics, confusion matrix, README.md) and that folder, exactly, is uploaded. Checkpoints are never uploaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass

from omegaconf import MISSING

from textft.cli import run_command
from textft.config import TextftError, load_recipe

log = logging.getLogger("textft")

USAGE = """usage: textft-push model=RUN_DIR repo_id=USER/NAME [key=value ...]

  model=RUN_DIR        a finished textft run (output_dir of textft-train)
  repo_id=USER/NAME    the Hub model repository (created when missing)
  private=true         create the repository as private
  revision=BRANCH      push to this branch (created when missing)
  adapter_only=true    LoRA runs: push the adapter (+ base_model in the card) instead of the merged model
  base_model=ORG/NAME  the base model's Hub id, when the run used a local copy (for the card and adapter_config.json)
  license=ID           the card's license (default: other)
  dry_run=true stage_dir=DIR   write exactly the folder that would be uploaded, upload nothing

The token comes from HF_TOKEN or `hf auth login`; it is never written anywhere.
"""

# files of a run that belong in a model repo: weights (safetensors only), configs, tokenizer/processor files
MODEL_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json")
PROCESSOR_PATTERNS = ("tokenizer*.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "*.model")
PROCESSOR_PATTERNS += ("preprocessor_config.json", "processor_config.json", "added_tokens.json")
ADAPTER_PATTERNS = ("adapter_config.json", "adapter_model.safetensors")
RUN_FILES = (
    "recipe.yaml",
    "inference.json",
    "thresholds.json",
    "metrics.json",
    "classification_report.json",
    "confusion_matrix.png",
    "regression_report.json",
    "predicted_vs_true.png",
)


@dataclass
class PushConfig:
    model: str = MISSING
    repo_id: str | None = None
    private: bool = False
    revision: str | None = None
    adapter_only: bool = False
    base_model: str | None = None
    license: str = "other"
    dry_run: bool = False
    stage_dir: str | None = None
    commit_message: str = "Upload textft model"


def _copy(src: Path, patterns: tuple[str, ...], dst: Path) -> list[str]:
    copied = []
    for pattern in patterns:
        for path in sorted(src.glob(pattern)):
            if path.is_file() and not (dst / path.name).exists():
                shutil.copy2(path, dst / path.name)
                copied.append(path.name)
    return copied


def stage(run_dir: Path, s: PushConfig, stage_dir: Path, token: str | None = None) -> Path:
    """Write the folder to upload into stage_dir (under a temporary name, renamed when complete)."""
    from textft.card import hub_base_model, model_card

    if not (run_dir / "recipe.yaml").is_file() or not (run_dir / "config.json").is_file():
        raise TextftError(
            f"model: {run_dir} is not a finished textft run (no recipe.yaml/config.json); give an output_dir"
        )
    recipe = load_recipe(str(run_dir / "recipe.yaml"))
    config = json.loads((run_dir / "config.json").read_text())
    label_names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    if s.adapter_only and not (run_dir / "adapter" / "adapter_config.json").is_file():
        raise TextftError(f"adapter_only=true: {run_dir} has no adapter/ folder (mode={recipe.mode}); push without it")
    if list(run_dir.glob("*.bin")) and not list(run_dir.glob("*.safetensors")):
        raise TextftError(f"model: {run_dir} has pickled .bin weights only; textft pushes safetensors only")
    repo_id = s.repo_id or f"{os.environ.get('USER', 'user')}/{recipe.name}"
    if hub_base_model(recipe, s.base_model) is None:
        log.warning(
            "base model %s is a local path, not a Hub id: the card%s cannot link it for others; "
            "pass base_model=ORG/NAME (the Hub id it was downloaded from)",
            recipe.model.name_or_path,
            " and adapter_config.json" if s.adapter_only else "",
        )

    if stage_dir.exists() and any(stage_dir.iterdir()):
        raise TextftError(f"stage_dir: {stage_dir} exists and is not empty; remove it or choose another folder")
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=stage_dir.parent, prefix=f".{stage_dir.name}."))
    try:
        if s.adapter_only:
            _copy(run_dir / "adapter", ADAPTER_PATTERNS + PROCESSOR_PATTERNS, tmp)
            base = hub_base_model(recipe, s.base_model)
            if base:  # the adapter must name a base model that others can load, not this machine's folder
                adapter_config = json.loads((tmp / "adapter_config.json").read_text())
                adapter_config["base_model_name_or_path"] = base
                (tmp / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
        else:
            _copy(run_dir, MODEL_PATTERNS, tmp)
        _copy(run_dir, PROCESSOR_PATTERNS, tmp)
        _copy(run_dir, RUN_FILES, tmp)
        if not list(tmp.glob("*.safetensors")):
            raise TextftError(f"model: no safetensors weights found in {run_dir}; is the run finished?")
        card = model_card(
            recipe,
            metrics,
            label_names,
            repo_id,
            base_model=s.base_model,
            adapter_only=s.adapter_only,
            license=s.license,
            has_confusion_matrix=(tmp / "confusion_matrix.png").is_file(),
            info=json.loads((run_dir / "inference.json").read_text())
            if (run_dir / "inference.json").is_file()
            else None,
        )
        card.save(tmp / "README.md")
        if token:  # belt and braces: the token must never leave this machine inside a file
            leaked = [p.name for p in tmp.iterdir() if token.encode() in p.read_bytes()]
            if leaked:
                raise TextftError(f"refusing to push: the Hub token appears in {leaked[0]}; remove it from the run")
        if stage_dir.exists():
            stage_dir.rmdir()
        os.replace(tmp, stage_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stage_dir


def hub_token() -> str:
    from huggingface_hub import get_token

    token = get_token()  # HF_TOKEN, else the token saved by `hf auth login`
    if not token:
        raise TextftError("no Hugging Face token: run `hf auth login` or set HF_TOKEN (a token with write access)")
    return token


def push(s: PushConfig) -> dict:
    """Stage the run and upload it (or only stage it, dry_run=true); returns what was done."""
    run_dir = Path(s.model)
    if not run_dir.is_dir():
        raise TextftError(f"model: {run_dir} is not a directory; give the output_dir of a textft-train run")
    if s.dry_run:
        if not s.stage_dir:
            raise TextftError("dry_run=true needs stage_dir=DIR: the folder that would be uploaded is written there")
        from huggingface_hub import get_token

        folder = stage(run_dir, s, Path(s.stage_dir), get_token())
        return {"dry_run": True, "stage_dir": str(folder), "files": sorted(p.name for p in folder.iterdir())}
    if not s.repo_id:
        raise TextftError("repo_id is required: pass repo_id=USER/NAME (or dry_run=true stage_dir=DIR to only stage)")
    from huggingface_hub import HfApi

    token = hub_token()
    with tempfile.TemporaryDirectory(prefix="textft-push-") as tmp:
        folder = stage(run_dir, s, Path(tmp) / "stage", token)
        api = HfApi(token=token)
        try:
            url = api.create_repo(s.repo_id, private=s.private, exist_ok=True, repo_type="model")
            if s.revision:
                api.create_branch(s.repo_id, branch=s.revision, exist_ok=True)
            commit = api.upload_folder(
                repo_id=s.repo_id, folder_path=folder, revision=s.revision, commit_message=s.commit_message
            )
        except Exception as e:
            msg = str(e).replace(token, "***").splitlines()[0] if str(e) else type(e).__name__
            raise TextftError(f"push to {s.repo_id} failed: {msg}") from None
        files = sorted(p.name for p in folder.iterdir())
    log.info("pushed %d files to %s", len(files), url)
    return {"repo_id": s.repo_id, "url": str(url), "commit": getattr(commit, "oid", None), "files": files}


def push_run(run_dir: str | Path, repo_id: str, private: bool = False, revision: str | None = None) -> dict:
    """Push a finished run (textft-train with push_to_hub=true calls this at the end)."""
    return push(PushConfig(model=str(run_dir), repo_id=repo_id, private=private, revision=revision))


def main(argv: list[str] | None = None) -> None:
    run_command(push, PushConfig, USAGE, "textft-push", argv)


if __name__ == "__main__":
    main()
