"""The typed recipe schema: load a recipe by name or path, apply `base:` inheritance and `key=value` overrides, validate."""

from __future__ import annotations

import dataclasses
import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class TextftError(Exception):
    """A user-facing error: one line that names the key, column, file or value and says what to do."""


class RecipeError(TextftError):
    pass


MODES = ("full", "freeze_embeddings", "head_only", "lora")
TRUNCATIONS = ("head", "tail", "head_tail")
TASKS = ("text", "image")
PROBLEM_TYPES = ("auto", "single_label", "multi_label", "regression")


@dataclass
class ModelConfig:
    name_or_path: str = MISSING  # Hub id or local directory
    revision: str | None = None
    trust_remote_code: bool = False
    init: str = "pretrained"  # pretrained | scratch (weights from `config`, for the offline image chain)
    config: dict[str, Any] = field(default_factory=dict)  # AutoConfig overrides, e.g. sizes for init=scratch
    attn_implementation: str | None = None  # None: the library's default (sdpa where the model supports it)


@dataclass
class FilesConfig:
    train: str | None = None
    validation: str | None = None
    test: str | None = None


@dataclass
class DataConfig:
    dataset: str | None = None  # Hub id (or a local dataset directory); or use `files`
    dataset_config: str | None = None
    files: FilesConfig = field(default_factory=FilesConfig)
    text_column: Any = "text"  # a column name, or a list of two for sentence pairs
    label_column: str = "label"
    problem_type: str = "auto"  # auto | single_label | multi_label | regression (auto: from the label column)
    label_separator: str | None = None  # multi-label labels in one text column, e.g. "|" for "sport|tech"
    label_columns: list[str] | None = None  # multi-label as one 0/1 column per label (the jigsaw layout)
    thresholds: Any = "tune"  # multi-label decisions: tune (per label, on validation) | 0.5 | {label: threshold}
    image_column: str = "image"  # task=image
    label_names: list[str] | None = None  # names for integer labels (else taken from the dataset, or str(i))
    val_split: float = 0.1  # carved from train (stratified) when there is no validation split
    test_split: float = 0.0  # carved from train (stratified) when there is no test split and this is > 0
    split_seed: int = 0  # seeds the carved splits and max_*_samples subsets; independent of `seed` (training)
    max_length: int = 256
    truncation: str = "head"  # head | tail | head_tail (first 128/510 of the budget + the rest from the end)
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    encoding: str = "utf-8"  # of csv/json/txt files
    num_proc: int | None = None  # tokenization processes
    # a class-weighted loss: auto (single-label: n / (classes * count); multi-label: pos_weight = negatives/positives,
    # capped) | {label: weight} (single-label: rescaled to mean 1 over the training examples)
    class_weights: Any = None
    dedup: bool = True  # drop train rows whose text (image bytes) is also in validation/test; counts in metrics.json


@dataclass
class ImageConfig:
    """task=image: train-only augmentation, applied on the fly (evaluation and prediction see the plain image)."""

    crop_scale: list[float] | None = None  # random resized crop: area range, e.g. [0.8, 1.0]; null: off
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])  # aspect range of that crop
    horizontal_flip: bool = False  # mirror half the images (not for digits or text)


@dataclass
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: Any = "auto"  # auto (per architecture) | all-linear | [module names]


@dataclass
class OptimConfig:
    head_lr: float | None = None  # learning rate of the new head (default: train.learning_rate, like the body)
    layer_decay: float | None = None  # LR multiplier per encoder block down from the top (Sun et al. 2019: 0.95)


@dataclass
class UnfreezeConfig:
    stage_steps: int = 0  # train the head alone for this many optimizer steps, then unfreeze (0: off)
    stage_epochs: float = 0.0  # or the same in epochs (fractions allowed)
    layers_per_stage: int = 0  # 0: the whole body after the head stage; k: the top k more blocks each stage


@dataclass
class MlmConfig:  # textft.adapt: continued masked-language-model pretraining
    probability: float = 0.15  # fraction of tokens masked


@dataclass
class HubConfig:
    repo_id: str | None = None  # USER/NAME; push_to_hub=true pushes the run there at the end of training
    private: bool = False
    revision: str | None = None  # a branch; created when missing


@dataclass
class SearchConfig:  # textft-search: an Optuna study over recipe keys
    n_trials: int = 20  # trials in all (a resumed search runs the rest)
    timeout: float | None = None  # seconds; stop starting new trials after this
    pruner: str = "median"  # median: stop a trial below the median of earlier ones at the same evaluation | none
    startup_trials: int = 3  # trials that run to the end before the pruner may stop any
    keep_models: bool = False  # keep each trial's weights and checkpoints (default: only metrics, recipe and plots)
    # recipe key -> {type: float|int|log|choice, low, high, (step), values}, e.g.
    # train.learning_rate: {type: log, low: 1.0e-5, high: 1.0e-3}; lora.r: {type: choice, values: [4, 8, 16]}
    space: dict[str, Any] = field(default_factory=dict)


@dataclass
class CvConfig:  # k-fold cross-validation over the train split
    folds: int | None = None  # K: one run per stratified fold into output_dir/fold_N, and metrics_summary.json
    refit: bool = False  # then train on all of train (no held-out rows) into output_dir itself


@dataclass
class RecipeConfig:
    task: str = "text"  # text | image
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    mode: str = "full"
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: dict[str, Any] = field(default_factory=dict)  # any transformers.TrainingArguments field
    optim: OptimConfig = field(default_factory=OptimConfig)
    unfreeze: UnfreezeConfig = field(default_factory=UnfreezeConfig)
    mlm: MlmConfig = field(default_factory=MlmConfig)
    early_stopping_patience: int | None = None  # evaluations without improvement of metric_for_best_model
    output_dir: str = "outputs/${name}"
    seed: int = 42
    seeds: list[int] | None = None  # run once per seed into output_dir/seed_N, plus metrics_summary.json (mean, std)
    name: str = "recipe"  # set from the recipe file name; used in output_dir and the model card
    push_to_hub: bool = False  # push the run to hub.repo_id at the end of training (textft-push does the same by hand)
    hub: HubConfig = field(default_factory=HubConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    cv: CvConfig = field(default_factory=CvConfig)


# Keys that textft sets itself; a recipe must not set them under `train:`.
TRAIN_RESERVED = {"output_dir": "output_dir", "seed": "seed"}


def recipe_dirs() -> list[Path]:
    """Where bundled recipes live: inside the installed package, or `recipes/` of a source checkout."""
    here = Path(__file__).resolve().parent
    return [d for d in (here / "recipes", here.parent / "recipes") if d.is_dir()]


def available_recipes() -> list[str]:
    return sorted({p.stem for d in recipe_dirs() for p in d.glob("*.yaml")})


def find_recipe(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not path.is_file():
            raise RecipeError(
                f"recipe file {name_or_path} does not exist; give a path to a .yaml file or a bundled name"
            )
        return path
    for d in recipe_dirs():
        if (d / f"{name_or_path}.yaml").is_file():
            return d / f"{name_or_path}.yaml"
    close = difflib.get_close_matches(name_or_path, available_recipes(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise RecipeError(
        f"unknown recipe '{name_or_path}'{hint}; available: {', '.join(available_recipes())}, or give a path to a .yaml file"
    )


def _read_recipe(name_or_path: str, seen: tuple[str, ...] = ()) -> DictConfig:
    """Read a recipe file and the chain of `base:` recipes under it (base first, then the file's own keys)."""
    path = find_recipe(name_or_path)
    key = str(path.resolve())
    if key in seen:
        raise RecipeError(f"recipe {path} inherits from itself through 'base:'; remove the cycle")
    try:
        raw = OmegaConf.load(path)
    except Exception as e:  # yaml errors are long and multi-line
        raise RecipeError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, DictConfig):
        raise RecipeError(f"recipe {path} must be a mapping of keys, not {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise RecipeError(f"recipe {path}: 'base' must be one recipe name or path, got {base!r}")
    # a relative base path resolves against the file that names it
    base_ref = str(path.parent / base) if base.endswith((".yaml", ".yml")) and not os.path.isabs(base) else base
    return OmegaConf.merge(_read_recipe(base_ref, (*seen, key)), raw)


def _schema_keys(node: Any, prefix: str = "") -> set[str]:
    keys = set()
    for f in dataclasses.fields(node):
        keys.add(prefix + f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            keys |= _schema_keys(default, prefix + f.name + ".")
    return keys


def _check_keys(cfg: DictConfig, schema: Any, prefix: str = "") -> None:
    """Unknown keys are errors that name the closest valid key (OmegaConf's own message names the class, not the key)."""
    valid = {f.name: f for f in dataclasses.fields(schema)}
    for key in cfg.keys():
        full = prefix + str(key)
        if key not in valid:
            candidates = sorted(_schema_keys(RecipeConfig()))
            close = difflib.get_close_matches(full, candidates, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys here: {', '.join(sorted(valid))}"
            raise RecipeError(f"unknown recipe key '{full}'{hint}")
        f = valid[key]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = cfg._get_node(key)
        if dataclasses.is_dataclass(default) and isinstance(value, DictConfig):
            _check_keys(value, default, full + ".")


def _check_train_keys(train: dict[str, Any]) -> None:
    from transformers import TrainingArguments  # deferred: importing transformers costs seconds

    fields = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    for key in train:
        if key in TRAIN_RESERVED:
            raise RecipeError(
                f"recipe key 'train.{key}' is set by textft; use the top-level '{TRAIN_RESERVED[key]}' key"
            )
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            hint = f"did you mean 'train.{close[0]}'?" if close else "see transformers.TrainingArguments for valid keys"
            raise RecipeError(f"unknown recipe key 'train.{key}' (not a TrainingArguments field); {hint}")


def _check_values(cfg: RecipeConfig) -> None:
    choices = {
        "task": (cfg.task, TASKS),
        "mode": (cfg.mode, MODES),
        "data.truncation": (cfg.data.truncation, TRUNCATIONS),
        "data.problem_type": (cfg.data.problem_type, PROBLEM_TYPES),
    }
    choices["model.init"] = (cfg.model.init, ("pretrained", "scratch"))
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise RecipeError(f"recipe key '{key}' is '{value}'; choose one of: {', '.join(allowed)}")
    if cfg.data.dataset is None and cfg.data.files.train is None:
        raise RecipeError("recipe needs data: set 'data.dataset' (a Hub id) or 'data.files.train' (a local file)")
    if cfg.push_to_hub and not cfg.hub.repo_id:
        raise RecipeError("recipe key 'push_to_hub' is true but 'hub.repo_id' is not set; set hub.repo_id=USER/NAME")
    if cfg.push_to_hub and cfg.seeds:
        raise RecipeError(
            "recipe keys 'push_to_hub' and 'seeds' together would push every seed to one repo; "
            "drop push_to_hub and push one run with textft-push model=OUTPUT_DIR/seed_N"
        )
    _check_labels(cfg.data)
    if not 0.0 <= cfg.data.val_split < 1.0:
        raise RecipeError(f"recipe key 'data.val_split' is {cfg.data.val_split}; give a fraction in [0, 1)")
    if cfg.task == "text":
        cols = cfg.data.text_column
        if not (isinstance(cols, str) or (isinstance(cols, list) and len(cols) == 2)):
            raise RecipeError(f"recipe key 'data.text_column' is {cols!r}; give one column name or a list of two")
        if isinstance(cols, list) and cfg.data.truncation != "head":
            raise RecipeError(
                "recipe key 'data.truncation' must be 'head' for sentence pairs (data.text_column is a pair)"
            )
    for key, pair in (("image.crop_scale", cfg.image.crop_scale), ("image.crop_ratio", cfg.image.crop_ratio)):
        if pair is not None and not (len(pair) == 2 and 0 < pair[0] <= pair[1]):
            raise RecipeError(f"recipe key '{key}' is {pair!r}; give [low, high] with 0 < low <= high, e.g. [0.8, 1.0]")


def _check_labels(data: DataConfig) -> None:
    """The multi-label keys: one layout at a time, thresholds in (0, 1)."""
    multi = data.label_separator or data.label_columns
    if multi and data.problem_type in ("single_label", "regression"):
        key = "data.label_separator" if data.label_separator else "data.label_columns"
        raise RecipeError(f"recipe key '{key}' is for multi-label data but data.problem_type is '{data.problem_type}'")
    if data.label_separator is not None and data.label_columns:
        raise RecipeError("set one of 'data.label_separator' and 'data.label_columns', not both")
    if data.label_separator == "":
        raise RecipeError("recipe key 'data.label_separator' is empty; give the character between labels, e.g. '|'")
    if data.label_columns is not None:
        data.label_columns = [str(c) for c in data.label_columns]
        if not data.label_columns or len(set(data.label_columns)) != len(data.label_columns):
            raise RecipeError(f"recipe key 'data.label_columns' is {data.label_columns}; give distinct column names")
    t = data.thresholds
    if isinstance(t, DictConfig):
        t = data.thresholds = OmegaConf.to_container(t)
    values = list(t.values()) if isinstance(t, dict) else [t]
    if t != "tune" and not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in values):
        raise RecipeError(f"recipe key 'data.thresholds' is {t!r}; give tune, a number in (0, 1) or {{label: number}}")
    if isinstance(t, dict):
        data.thresholds = {str(k): float(v) for k, v in t.items()}


def _check_toolbox(cfg: RecipeConfig) -> None:
    """optim / unfreeze / class_weights / seeds / mlm values."""
    if cfg.optim.head_lr is not None and cfg.optim.head_lr <= 0:
        raise RecipeError(f"recipe key 'optim.head_lr' is {cfg.optim.head_lr}; give a learning rate > 0")
    if cfg.optim.layer_decay is not None and not 0 < cfg.optim.layer_decay <= 1:
        raise RecipeError(f"recipe key 'optim.layer_decay' is {cfg.optim.layer_decay}; give a factor in (0, 1]")
    u = cfg.unfreeze
    if u.stage_steps < 0 or u.stage_epochs < 0 or u.layers_per_stage < 0:
        raise RecipeError("recipe keys 'unfreeze.*' must be >= 0")
    if u.stage_steps > 0 and u.stage_epochs > 0:
        raise RecipeError("set one of 'unfreeze.stage_steps' and 'unfreeze.stage_epochs', not both")
    if (u.stage_steps > 0 or u.stage_epochs > 0) and cfg.mode not in ("full", "freeze_embeddings"):
        raise RecipeError(f"recipe key 'unfreeze.*' needs mode=full or freeze_embeddings (mode is '{cfg.mode}')")
    weights = cfg.data.class_weights
    if isinstance(weights, DictConfig):
        weights = cfg.data.class_weights = OmegaConf.to_container(weights)
    if weights is not None and weights != "auto":
        if not isinstance(weights, dict) or not all(isinstance(w, (int, float)) and w >= 0 for w in weights.values()):
            raise RecipeError(f"recipe key 'data.class_weights' is {weights!r}; give 'auto' or {{label: weight >= 0}}")
        cfg.data.class_weights = {str(k): float(w) for k, w in weights.items()}
    if cfg.seeds is not None:
        cfg.seeds = list(cfg.seeds)
        if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
            raise RecipeError(f"recipe key 'seeds' is {cfg.seeds}; give distinct integers, e.g. [1,2,3]")
    if not 0 < cfg.mlm.probability < 1:
        raise RecipeError(f"recipe key 'mlm.probability' is {cfg.mlm.probability}; give a fraction in (0, 1)")


def _check_experiments(cfg: RecipeConfig) -> None:
    """search / cv values (the search space itself is checked by textft.search when a search starts)."""
    folds = cfg.cv.folds
    if folds is not None and folds < 2:
        raise RecipeError(f"recipe key 'cv.folds' is {folds}; give 2 or more folds (or null for no cross-validation)")
    if cfg.cv.refit and folds is None:
        raise RecipeError("recipe key 'cv.refit' is true but 'cv.folds' is not set; set cv.folds=K")
    if folds is not None and cfg.seeds:
        raise RecipeError(
            "recipe keys 'cv.folds' and 'seeds' are both set; choose one (folds vary the data, seeds the run)"
        )
    if folds is not None and cfg.push_to_hub and not cfg.cv.refit:
        raise RecipeError("recipe key 'push_to_hub' with 'cv.folds' pushes the refit model; set cv.refit=true")
    if cfg.search.n_trials < 1:
        raise RecipeError(f"recipe key 'search.n_trials' is {cfg.search.n_trials}; give 1 or more")
    if cfg.search.pruner not in ("median", "none"):
        raise RecipeError(f"recipe key 'search.pruner' is '{cfg.search.pruner}'; choose one of: median, none")
    if cfg.search.startup_trials < 0:
        raise RecipeError(f"recipe key 'search.startup_trials' is {cfg.search.startup_trials}; give 0 or more")


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> RecipeConfig:
    """Recipe file (+ its bases) + dotted overrides -> a validated RecipeConfig object."""
    raw = _read_recipe(name_or_path)
    if "name" not in raw:
        raw.name = find_recipe(name_or_path).stem
    for item in overrides or []:
        if "=" not in item:
            raise RecipeError(f"override '{item}' is not key=value (e.g. train.learning_rate=3e-5)")
        key, value = item.split("=", 1)
        if key == "base":
            raise RecipeError("'base' cannot be overridden on the command line; use recipe=NAME instead")
        if value.strip() in ("|", ">"):  # YAML block-scalar indicators would read as ""; a label separator means "|"
            value = f"'{value.strip()}'"
        try:
            raw = OmegaConf.merge(raw, OmegaConf.from_dotlist([f"{key}={value}"]))
        except OmegaConfBaseException as e:
            raise RecipeError(f"override '{item}': {str(e).splitlines()[0]}") from None
    _check_keys(raw, RecipeConfig)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RecipeConfig), raw)
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise RecipeError(
                f"recipe key '{missing[0]}' is required but not set; add it to the recipe or pass {missing[0]}=..."
            )
        obj: RecipeConfig = OmegaConf.to_object(cfg)  # also resolves ${...} interpolations
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise RecipeError(f"recipe key '{key}': {str(e).splitlines()[0]}") from None
    if isinstance(obj.data.text_column, ListConfig):
        obj.data.text_column = list(obj.data.text_column)
    if isinstance(obj.data.label_columns, ListConfig):
        obj.data.label_columns = list(obj.data.label_columns)
    _check_train_keys(obj.train)
    _check_values(obj)
    _check_toolbox(obj)
    _check_experiments(obj)
    return obj


def to_yaml(cfg: RecipeConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a file under a temporary name in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
