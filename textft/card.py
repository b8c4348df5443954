"""The model card (README.md) of a run: Hub metadata with model-index from metrics.json, then the run's provenance."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from textft.config import RecipeConfig
from textft.train_args import train_arguments

PIPELINE_TAGS = {"text": "text-classification", "image": "image-classification"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "f1_macro": "F1 (macro)",
    "f1_weighted": "F1 (weighted)",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    "f1_micro": "F1 (micro)",
    "f1_samples": "F1 (samples)",
    "subset_accuracy": "Subset accuracy",
    "hamming_loss": "Hamming loss",
    "roc_auc_macro": "ROC AUC (macro)",
    "average_precision_macro": "Average precision (macro)",
    "rmse": "RMSE",
    "mae": "MAE",
    "pearson": "Pearson",
    "spearman": "Spearman",
    "r2": "R2",
}
PROBLEM_TEXT = {
    "single_label": "single-label classifier (one class per input; softmax)",
    "multi_label": "multi-label classifier (any number of labels per input; sigmoid with per-label thresholds)",
    "regression": "regression model (one number per input)",
}
VERSIONS = ("textft", "transformers", "torch", "peft", "accelerate", "datasets", "huggingface_hub")

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A {{ task_name }} {{ problem_text }}, fine-tuned with textft from {{ base_link }}
(`mode={{ mode }}`: {{ mode_text }}). {{ labels_text }}
{% if thresholds %}
Decision thresholds per label (tuned on the validation split to maximise each label's F1; `config.thresholds` holds
them, and textft-predict applies them; the test figures below use them):

| label | threshold |
|---|---|
{% for label, t in thresholds %}| {{ label }} | {{ t }} |
{% endfor %}{% endif %}
## Training

| | |
|---|---|
| base model | {{ base_link }} |
| mode | `{{ mode }}` ({{ trainable }} of {{ total }} parameters trained) |
| data | {{ data_text }} |
| input | {{ input_text }} |
| recipe | `{{ recipe_name }}` (the resolved recipe is `recipe.yaml` in this repository) |

Hyper-parameters:

| parameter | value |
|---|---|
{% for key, value in hyperparameters %}| {{ key }} | {{ value }} |
{% endfor %}
## Results

| split | {% for name in metric_names %}{{ name }} | {% endfor %}
|---|{% for name in metric_names %}---|{% endfor %}
{% for split, values in results %}| {{ split }} | {% for v in values %}{{ v }} | {% endfor %}
{% endfor %}
{% if confusion_matrix %}![confusion matrix](confusion_matrix.png)
{% endif %}{% if scatter %}![predicted against true values](predicted_vs_true.png)
{% endif %}
## Usage

```python
{{ usage }}
```

Batch scoring of a file (csv, jsonl, parquet, txt) with textft: `textft-predict model={{ repo_id }} input=FILE output=scored.csv`.

## Limitations

- Evaluated only on the splits above; expect lower accuracy on text unlike the training data (other sources, topics, periods).
- {{ length_text }}
- {{ scores_text }}
- Any bias of the base model and of the training data carries over.

## Library versions

{% for name, version in versions %}- {{ name }} {{ version }}
{% endfor %}"""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "(source checkout)" if name == "textft" else "not installed"


def hub_base_model(recipe: RecipeConfig, override: str | None) -> str | None:
    """The base model's Hub id: the override, else the recipe's model when it names a Hub repo (not a local folder)."""
    if override:
        return override
    name = recipe.model.name_or_path
    return name if HUB_ID.match(name) and not Path(name).exists() else None


def _results(metrics: dict) -> tuple[list[str], list[tuple[str, list[str]]], list[tuple[str, str, float]]]:
    """Table columns, table rows per split, and (split, metric, value) for model-index."""
    names = [m for m in METRIC_NAMES if any(f"{p}_{m}" in metrics for p in ("eval", "test"))]
    rows, index = [], []
    for prefix, split in (("eval", "validation"), ("test", "test")):
        if any(f"{prefix}_{m}" in metrics for m in names):
            rows.append(
                (split, [f"{metrics[f'{prefix}_{m}']:.4f}" if f"{prefix}_{m}" in metrics else "-" for m in names])
            )
            index += [(split, m, metrics[f"{prefix}_{m}"]) for m in names if f"{prefix}_{m}" in metrics]
    return [METRIC_NAMES[m] for m in names], rows, index


def model_card(
    recipe: RecipeConfig,
    metrics: dict,
    label_names: list[str],
    repo_id: str,
    *,
    base_model: str | None = None,
    adapter_only: bool = False,
    license: str = "other",
    has_confusion_matrix: bool = True,
    info: dict | None = None,
):
    """A huggingface_hub ModelCard for a finished run (`card.save(folder / "README.md")`); `info` is the run's
    inference.json (problem type, thresholds)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    task = PIPELINE_TAGS[recipe.task]
    data = recipe.data
    if data.dataset:
        dataset_id, dataset_name = (
            data.dataset,
            data.dataset + (f" ({data.dataset_config})" if data.dataset_config else ""),
        )
        data_text = f"[{data.dataset}](https://huggingface.co/datasets/{data.dataset})"
    else:
        files = {s: getattr(data.files, s) for s in ("train", "validation", "test") if getattr(data.files, s)}
        dataset_id = Path(data.files.train).parent.name or recipe.name  # local files: a name, not a Hub id
        dataset_name = dataset_id
        data_text = "local files: " + ", ".join(f"{s} `{Path(p).name}`" for s, p in files.items())
    if data.max_train_samples:
        data_text += f" (at most {data.max_train_samples} training rows)"
    column_names, rows, index = _results(metrics)
    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type=dataset_id,
            dataset_name=dataset_name,
            dataset_config=data.dataset_config,
            dataset_split=split,
            metric_type={"accuracy": "accuracy"}.get(metric, metric.split("_")[0]),
            metric_name=f"{METRIC_NAMES[metric]} ({split})",
            metric_value=round(float(value), 4),
            metric_config=None if metric == "accuracy" else metric.split("_")[1],
        )
        for split, metric, value in index
    ]
    base = hub_base_model(recipe, base_model)
    card_data = ModelCardData(
        library_name="peft" if adapter_only else "transformers",
        pipeline_tag=task,
        base_model=base,
        datasets=[data.dataset] if data.dataset and HUB_ID.match(data.dataset) else None,
        license=license,
        tags=["textft", task, f"mode-{recipe.mode}", *(["lora"] if recipe.mode == "lora" else [])],
        metrics=sorted({r.metric_type for r in eval_results}) or None,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )
    mode_text = {
        "full": "every weight trained",
        "freeze_embeddings": "the embeddings frozen, the rest trained",
        "head_only": "only the classification head trained, the encoder frozen",
        "lora": f"LoRA adapters (r={recipe.lora.r}, alpha={recipe.lora.alpha}) and the head trained"
        + ("; this repository holds the adapter" if adapter_only else "; merged into the weights here"),
    }[recipe.mode]
    args = train_arguments(recipe)
    keys = ("num_train_epochs", "learning_rate", "per_device_train_batch_size", "weight_decay", "warmup_steps")
    keys += ("lr_scheduler_type", "metric_for_best_model", "bf16", "fp16")
    hyperparameters = [(k, args[k]) for k in keys if k in args] + [("seed", recipe.seed)]
    if recipe.mode == "lora":
        hyperparameters += [
            ("lora.r", recipe.lora.r),
            ("lora.alpha", recipe.lora.alpha),
            ("lora.dropout", recipe.lora.dropout),
        ]
    if recipe.task == "text":
        input_text = f"column `{data.text_column}`, at most {data.max_length} tokens ({data.truncation} truncation)"
        length_text = (
            f"Texts longer than {data.max_length} tokens were cut ({data.truncation}) in training; "
            f"text beyond that is not seen (textft-predict long_text=window averages windows over long texts)."
        )
    else:
        input_text, length_text = f"column `{data.image_column}` (images)", "Images are resized by the image processor."
    problem = (info or {}).get("problem_type", "single_label")
    thresholds = (info or {}).get("thresholds") if problem == "multi_label" else None
    labels_text = {
        "single_label": f"Classes ({len(label_names)}): {', '.join(label_names)}.",
        "multi_label": f"Labels ({len(label_names)}): {', '.join(label_names)}.",
        "regression": f"Target: `{label_names[0] if label_names else 'value'}`.",
    }[problem]
    scores_text = {
        "single_label": "Only the classes above can be predicted; probabilities are softmax outputs and are not calibrated.",
        "multi_label": "Only the labels above can be predicted; scores are per-label sigmoid outputs, not calibrated.",
        "regression": "Predictions are trained to the training targets' range; values far outside it are unreliable.",
    }[problem]
    labels_py = "{" + ", ".join(f"{i}: {n!r}" for i, n in enumerate(label_names)) + "}"
    if adapter_only:
        base_ref = base or recipe.model.name_or_path
        usage = (
            "from peft import PeftModel\n"
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline\n\n"
            f"id2label = {labels_py}\n"
            f'base = AutoModelForSequenceClassification.from_pretrained("{base_ref}", num_labels={len(label_names)},\n'
            "    id2label=id2label, label2id={v: k for k, v in id2label.items()})\n"
            f'model = PeftModel.from_pretrained(base, "{repo_id}").merge_and_unload()\n'
            f'classifier = pipeline("{task}", model=model, tokenizer=AutoTokenizer.from_pretrained("{repo_id}"))\n'
            'print(classifier("Shares rose after the results.", top_k=None))'
        )
    else:
        example = "Shares rose after the results." if recipe.task == "text" else "image.png"
        usage = (
            "from transformers import pipeline\n\n"
            f'classifier = pipeline("{task}", model="{repo_id}")\n'
            + {
                "single_label": f'print(classifier("{example}", top_k=None))  # every class with its probability',
                "multi_label": f'scores = classifier("{example}", top_k=None)  # sigmoid score per label\n'
                "thresholds = classifier.model.config.thresholds  # tuned per label on validation\n"
                'print([s["label"] for s in scores if s["score"] >= thresholds[s["label"]]])',
                "regression": f'print(classifier("{example}", function_to_apply="none")[0]["score"])  # the value',
            }[problem]
        )
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        title=repo_id.split("/")[-1],
        task_name=recipe.task,
        base_link=f"[{base}](https://huggingface.co/{base})" if base else f"`{recipe.model.name_or_path}`",
        mode=recipe.mode,
        mode_text=mode_text,
        labels_text=labels_text,
        problem_text=PROBLEM_TEXT[problem],
        thresholds=list(zip(label_names, thresholds, strict=True)) if thresholds else None,
        scores_text=scores_text,
        trainable=f"{metrics['trainable_params']:,}" if "trainable_params" in metrics else "?",
        total=f"{metrics['total_params']:,}" if "total_params" in metrics else "?",
        data_text=data_text,
        input_text=input_text,
        recipe_name=recipe.name,
        hyperparameters=hyperparameters,
        metric_names=column_names,
        results=rows,
        confusion_matrix=has_confusion_matrix and problem == "single_label",
        scatter=problem == "regression",
        usage=usage,
        repo_id=repo_id,
        length_text=length_text,
        versions=[(name, _version(name)) for name in VERSIONS],
    )
