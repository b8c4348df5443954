"""textft-search: an Optuna search over recipe keys; every trial is a textft-train run on train/validation.

    textft-search recipe=bbc_minilm_search search.n_trials=20
    textft-train recipe=outputs/bbc_minilm_search/search/best_recipe.yaml

The space is the recipe's `search.space`: any recipe key -> {type: float|int|log|choice, ...}. The objective is
metric_for_best_model on validation (its direction from textft.train_args.best_metric); the test split is left out of every
trial. TPE samples the next trial, the median pruner stops a trial whose evaluation falls below the median of earlier
trials at the same evaluation, and the study lives in OUTPUT_DIR/search/study.db, so a rerun of the same command
resumes an interrupted search. After each trial, OUTPUT_DIR/search/trials.csv and best_recipe.yaml are rewritten.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import csv
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any

from textft.cli import split_argv
from textft.config import RecipeConfig, TextftError, load_recipe, to_yaml, write_text_atomic
from textft.train_args import best_metric

log = logging.getLogger("textft")

USAGE = """usage: textft-search recipe=NAME_OR_PATH [search.n_trials=20] [key=value ...]

  recipe=NAME        a recipe with a `search.space` section, e.g.
                       search:
                         space:
                           train.learning_rate: {type: log, low: 1.0e-5, high: 1.0e-3}
                           train.num_train_epochs: {type: int, low: 1, high: 4}
                           train.per_device_train_batch_size: {type: choice, values: [8, 16, 32]}
                           lora.r: {type: choice, values: [4, 8, 16]}
  key=value          override any recipe key (search.n_trials, search.timeout, search.pruner=none, ...)

Types: float (uniform in [low, high], optional step), int (optional step), log (log-uniform float), choice (values).
Each trial trains into OUTPUT_DIR/search/trial_NNN on train and validation (never test). The study is kept in
OUTPUT_DIR/search/study.db: the same command resumes an interrupted search. Results: OUTPUT_DIR/search/trials.csv and
OUTPUT_DIR/search/best_recipe.yaml (rerun it with textft-train recipe=OUTPUT_DIR/search/best_recipe.yaml).
"""

KINDS = ("float", "int", "log", "choice")
# a trial never pushes, and runs once: seeds and folds belong to the final run of best_recipe.yaml
TRIAL_OVERRIDES = ["seeds=null", "cv.folds=null", "cv.refit=false", "push_to_hub=false"]


@dataclass
class Param:
    """One searched recipe key."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    values: list | None = None


def parse_space(space: dict[str, Any]) -> list[Param]:
    """`search.space` -> Params. Keys may be dotted (`train.learning_rate: {...}`) or nested (`train: {learning_rate:
    {...}}`); a leaf is a mapping with a `type`."""
    params: list[Param] = []

    def walk(node: Any, key: str) -> None:
        where = f"search.space.{key}"
        if not isinstance(node, dict):
            raise TextftError(f"{where} is {node!r}; give {{type: float|int|log|choice, ...}}")
        if "type" not in node:
            if not node:
                raise TextftError(f"{where} is empty; give {{type: float|int|log|choice, ...}}")
            for child, value in node.items():
                walk(value, f"{key}.{child}")
            return
        kind = node["type"]
        extra = set(node) - {"type", "low", "high", "step", "values"}
        if kind not in KINDS:
            raise TextftError(f"{where}.type is '{kind}'; choose one of: {', '.join(KINDS)}")
        if extra:
            raise TextftError(f"{where}: unknown field '{sorted(extra)[0]}'; fields: type, low, high, step, values")
        if kind == "choice":
            values = node.get("values")
            if not isinstance(values, list) or not values:
                raise TextftError(f"{where}: type choice needs values: [a, b, ...]")
            if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
                raise TextftError(f"{where}.values: each choice must be a number, string, bool or null")
            params.append(Param(key, kind, values=values))
            return
        low, high = node.get("low"), node.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
            raise TextftError(f"{where}: type {kind} needs numbers low < high (got low={low}, high={high})")
        if kind == "log" and low <= 0:
            raise TextftError(f"{where}: type log needs low > 0 (got {low})")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise TextftError(f"{where}: type int needs whole numbers low and high (got {low}, {high})")
        params.append(Param(key, kind, low, high, node.get("step")))

    for key, node in space.items():
        walk(node, str(key))
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        raise TextftError(f"search.space names '{next(k for k in keys if keys.count(k) > 1)}' twice")
    return params


def suggest(trial, p: Param) -> Any:
    if p.kind == "choice":
        return trial.suggest_categorical(p.key, p.values)
    if p.kind == "int":
        return trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1))
    if p.kind == "log":
        return trial.suggest_float(p.key, float(p.low), float(p.high), log=True)
    return trial.suggest_float(p.key, float(p.low), float(p.high), step=p.step)


def as_overrides(params: dict[str, Any]) -> list[str]:
    """{key: value} -> `key=value` overrides (JSON values read back as the same YAML scalars)."""
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]


def without_test(splits, problem):
    """A trial sees train and validation only: the test split waits for the final run of best_recipe.yaml."""
    splits.pop("test", None)
    return splits


def pruning_callback(trial, metric: str):
    """A TrainerCallback that reports each evaluation's `metric` to the trial (step = the evaluation's number, which
    lines up across trials of different batch sizes) and stops a trial the pruner says to stop."""
    import optuna
    from transformers import TrainerCallback

    class ReportToOptuna(TrainerCallback):
        evaluations = 0

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get(f"eval_{metric}")
            if value is None:
                return
            self.evaluations += 1
            trial.report(value, step=self.evaluations)
            trial.set_user_attr("evaluations", self.evaluations)
            if trial.should_prune():
                raise optuna.TrialPruned(f"eval_{metric}={value:.4f} at evaluation {self.evaluations}")

    return ReportToOptuna()


def trials_table(study, metric: str, params: list[Param]) -> str:
    """trials.csv: one row per trial: number, state, objective, each searched key, evaluations, seconds, output_dir."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["trial", "state", f"eval_{metric}", *(p.key for p in params), "evaluations", "seconds", "output_dir"]
    )
    for t in study.get_trials(deepcopy=False):
        seconds = round(t.duration.total_seconds(), 1) if t.duration else ""
        value = t.value if t.value is not None else (t.intermediate_values.get(t.last_step) if t.last_step else "")
        writer.writerow(
            [
                t.number,
                t.state.name,
                value,
                *(t.params.get(p.key, "") for p in params),
                t.user_attrs.get("evaluations", ""),
                seconds,
                t.user_attrs.get("output_dir", ""),
            ]
        )
    return out.getvalue()


def _drop_weights(trial_dir: Path) -> None:
    """A finished trial keeps its metrics, recipe, reports and plots; its weights and checkpoints go (disk)."""
    for path in (trial_dir / "checkpoints", trial_dir / "adapter"):
        shutil.rmtree(path, ignore_errors=True)
    for path in trial_dir.glob("*.safetensors"):
        path.unlink()


def _comparable(recipe_yaml: str) -> dict:
    """A searched recipe without the keys a resumed search may change (trial count, time limit)."""
    import yaml

    recipe = yaml.safe_load(recipe_yaml)
    for key in ("n_trials", "timeout"):
        recipe.get("search", {}).pop(key, None)
    return recipe


def _open_study(cfg: RecipeConfig, search_dir: Path, greater: bool):
    """The Optuna study in search_dir/study.db: new, or the one an earlier (maybe interrupted) search left there.
    Trials left RUNNING by an interrupted search are marked failed and queued again with the same parameters."""
    import optuna
    from optuna.trial import TrialState

    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=cfg.search.startup_trials)
        if cfg.search.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    storage = optuna.storages.RDBStorage(f"sqlite:///{(search_dir / 'study.db').resolve()}")
    try:
        study = optuna.create_study(
            study_name=cfg.name,
            storage=storage,
            load_if_exists=True,
            direction="maximize" if greater else "minimize",
            sampler=optuna.samplers.TPESampler(seed=cfg.seed),
            pruner=pruner,
        )
    except ValueError as e:
        raise TextftError(f"{search_dir / 'study.db'}: {e}; delete {search_dir} to start a new search") from None
    study_id = storage.get_study_id_from_name(cfg.name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
        log.info("trial %d was interrupted: queued again with the same parameters", t.number)
    return study


def search(cfg: RecipeConfig) -> dict:
    """Run (or resume) the search of cfg.search; return a summary of the best trial."""
    import torch
    from optuna.trial import TrialState

    from textft.train import run

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TextftError("textft-search runs its trials in one process; start it without accelerate launch")
    params = parse_space(cfg.search.space)
    if not params:
        raise TextftError("search.space is empty; add keys to search, e.g. train.learning_rate: {type: log, ...}")
    from textft.data import load_splits

    _, problem = load_splits(cfg)  # the problem type (resolved into cfg) says which metric and which direction
    metric, greater = best_metric(cfg, problem)
    search_dir = Path(cfg.output_dir) / "search"
    search_dir.mkdir(parents=True, exist_ok=True)

    # the searched recipe, resolved: every trial is it plus the trial's values
    base = search_dir / "recipe.yaml"
    text = to_yaml(cfg)
    if base.is_file() and _comparable(base.read_text()) != _comparable(text):
        raise TextftError(
            f"{search_dir} holds a search of another recipe (or other overrides); set output_dir=... "
            f"or delete {search_dir} to start over"
        )
    write_text_atomic(base, text)
    try:  # every searched key must be a recipe key, with values the recipe accepts
        load_recipe(str(base), as_overrides({p.key: p.values[0] if p.values else p.low for p in params}))
    except TextftError as e:
        raise TextftError(f"search.space: {e}") from None

    study = _open_study(cfg, search_dir, greater)

    def objective(trial) -> float:
        values = {p.key: suggest(trial, p) for p in params}
        trial_dir = search_dir / f"trial_{trial.number:03d}"
        trial.set_user_attr("output_dir", str(trial_dir))
        one = load_recipe(str(base), [*as_overrides(values), f"output_dir={trial_dir}", *TRIAL_OVERRIDES])
        log.info("trial %d: %s", trial.number, values)
        try:
            metrics = run(one, callbacks=[pruning_callback(trial, metric)], select_splits=without_test)
        finally:
            if not cfg.search.keep_models:
                _drop_weights(trial_dir)
        if f"eval_{metric}" not in metrics:
            raise TextftError(
                f"train.metric_for_best_model: eval_{metric} is not among the run's metrics "
                f"({', '.join(k for k in metrics if k.startswith('eval_'))}); set it to one of them"
            )
        return metrics[f"eval_{metric}"]

    def after_trial(study, trial) -> None:
        write_text_atomic(search_dir / "trials.csv", trials_table(study, metric, params))
        if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
            write_best_recipe(study, base, cfg, metric, search_dir / "best_recipe.yaml")

    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    left = cfg.search.n_trials - done
    if left > 0:
        direction = study.direction.name.lower()
        log.info("search: %d trial(s) to run (%d done); objective: %s eval_%s", left, done, direction, metric)
        study.optimize(
            objective,
            n_trials=left,
            timeout=cfg.search.timeout,
            callbacks=[after_trial],
            catch=(torch.OutOfMemoryError,),  # a batch size that does not fit is a failed trial, not a failed search
            gc_after_trial=True,
        )
    trials = study.get_trials(deepcopy=False)
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED)}
    write_text_atomic(search_dir / "trials.csv", trials_table(study, metric, params))
    if not states["complete"]:
        raise TextftError(f"no trial of the search in {search_dir} completed; see {search_dir / 'trials.csv'}")
    best = study.best_trial
    return {
        f"best_eval_{metric}": best.value,
        "best_trial": best.number,
        "trials_complete": states["complete"],
        "trials_pruned": states["pruned"],
        "best_recipe": str(search_dir / "best_recipe.yaml"),
        "best_params": best.params,
    }


def write_best_recipe(study, base: Path, cfg: RecipeConfig, metric: str, path: Path) -> None:
    """The searched recipe with the best trial's values: textft-train reruns it (into the recipe's own output_dir)."""
    best = study.best_trial
    recipe = load_recipe(str(base), as_overrides(best.params))
    header = (
        f"# textft-search: best of {len(study.trials)} trial(s) is trial {best.number}, eval_{metric}={best.value:.4f}"
        f"\n# values: {json.dumps(best.params)}\n# rerun: textft-train recipe={path}\n"
    )
    write_text_atomic(path, header + to_yaml(recipe))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        pairs, _ = split_argv(sys.argv[1:] if argv is None else argv, USAGE)
        recipes = [a.split("=", 1)[1] for a in pairs if a.startswith("recipe=")]
        if len(recipes) != 1:
            raise TextftError("give exactly one recipe=NAME_OR_PATH (a recipe with a search.space section)")
        cfg = load_recipe(recipes[0], [a for a in pairs if not a.startswith("recipe=")])
        result = search(cfg)
    except TextftError as e:
        print(f"textft: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
