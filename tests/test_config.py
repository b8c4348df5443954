"""Recipes: loading by name or path, inheritance, overrides, and the one-line errors for bad input."""

from __future__ import annotations

import pytest

from textft.config import RecipeError, available_recipes, load_recipe, to_yaml
from textft.train import main
from textft.train_args import train_arguments


def test_bundled_recipes_all_load():
    names = available_recipes()
    assert {"bbc_minilm", "imdb_bert", "imdb_distilbert", "imdb_bert_lora", "imdb_bert_head_only"} <= set(names)
    for name in names:
        cfg = load_recipe(name)
        assert cfg.name == name and cfg.output_dir == f"outputs/{name}"


def test_lora_recipe_inherits_from_its_base_and_says_only_what_differs():
    base, lora = load_recipe("imdb_bert"), load_recipe("imdb_bert_lora")
    assert lora.mode == "lora" and base.mode == "full"
    assert lora.model.name_or_path == base.model.name_or_path == "bert-base-uncased"
    assert lora.data.max_length == base.data.max_length
    assert lora.train["learning_rate"] == 5e-4 and lora.train["num_train_epochs"] == base.train["num_train_epochs"]


def test_recipe_by_path_with_relative_base(tmp_path):
    (tmp_path / "parent.yaml").write_text("model: {name_or_path: m}\ndata: {files: {train: t.csv}}\ntrain: {seed: 1}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\nmode: head_only\n")
    with pytest.raises(RecipeError, match="'train.seed' is set by textft; use the top-level 'seed'"):
        load_recipe(str(tmp_path / "child.yaml"))
    (tmp_path / "parent.yaml").write_text("model: {name_or_path: m}\ndata: {files: {train: t.csv}}\n")
    cfg = load_recipe(str(tmp_path / "child.yaml"))
    assert (cfg.mode, cfg.model.name_or_path, cfg.name) == ("head_only", "m", "child")


def test_overrides_are_typed_and_reach_training_arguments():
    cfg = load_recipe("bbc_minilm", ["train.learning_rate=3e-5", "data.max_length=64", "mode=lora", "lora.r=4"])
    assert cfg.data.max_length == 64 and isinstance(cfg.data.max_length, int)
    assert (cfg.mode, cfg.lora.r) == ("lora", 4)
    args = train_arguments(cfg)
    assert args["learning_rate"] == 3e-5 and args["report_to"] == "none"


def test_a_bare_no_strategy_is_the_string_no_not_false():
    args = train_arguments(load_recipe("bbc_minilm", ["train.eval_strategy=no", "train.load_best_model_at_end=false"]))
    assert args["eval_strategy"] == "no"


def test_text_column_pair_is_accepted():
    cfg = load_recipe("bbc_minilm", ["data.text_column=[premise,hypothesis]"])
    assert cfg.data.text_column == ["premise", "hypothesis"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.max_len=64"], "unknown recipe key 'data.max_len'; did you mean 'data.max_length'?"),
        (["modle.name_or_path=x"], "unknown recipe key 'modle"),
        (
            ["train.learning_rat=1"],
            "unknown recipe key 'train.learning_rat' (not a TrainingArguments field); did you mean 'train.learning_rate'?",
        ),
        (["data.max_length=abc"], "recipe key 'data.max_length'"),
        (["mode=lora2"], "recipe key 'mode' is 'lora2'; choose one of: full, freeze_embeddings, head_only, lora"),
        (["data.truncation=middle"], "choose one of: head, tail, head_tail"),
        (["train.output_dir=x"], "use the top-level 'output_dir'"),
        (["lr"], "override 'lr' is not key=value"),
    ],
)
def test_bad_recipe_input_is_one_line_naming_the_key(overrides, message):
    with pytest.raises(RecipeError) as err:
        load_recipe("bbc_minilm", overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(
        RecipeError, match=r"unknown recipe 'imdb_bret' \(did you mean 'imdb_bert'\?\); available: .*bbc_minilm"
    ):
        load_recipe("imdb_bret")


def test_missing_required_value_is_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data: {files: {train: t.csv}}\n")
    with pytest.raises(RecipeError, match="'model.name_or_path' is required but not set"):
        load_recipe(str(path))


def test_base_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(RecipeError, match="inherits from itself"):
        load_recipe(str(tmp_path / "a.yaml"))


def test_print_recipe_prints_the_resolved_recipe_and_exits(capsys):
    main(["recipe=imdb_bert_lora", "lora.r=4", "--print-recipe"])
    out = capsys.readouterr().out
    assert "mode: lora" in out and "r: 4" in out and "name_or_path: bert-base-uncased" in out
    assert out == to_yaml(load_recipe("imdb_bert_lora", ["lora.r=4"]))


def test_cli_error_is_one_line_on_stderr_with_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["recipe=bbc_minilm", "data.max_len=3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("textft: error: unknown recipe key 'data.max_len'")
