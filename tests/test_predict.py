"""textft-predict on real (tiny) trained runs: order, formats, resume, LoRA directories, long texts, bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from conftest import keyword_rows, write_csv

from textft import inference
from textft import predict as predict_module
from textft.cli import parse_settings
from textft.config import TextftError
from textft.predict import PredictConfig, predict


@pytest.fixture(scope="session")
def texts():
    texts = [row["text"] for row in keyword_rows(40, seed=7)]
    texts += [" ".join(texts[i : i + 4]) for i in range(0, 20, 4)]  # longer than max_length=32 tokens: truncated
    random.Random(3).shuffle(texts)
    return texts


def run_predict(model, inp, out, **settings) -> dict:
    settings.setdefault("dtype", "float32")  # exact fp32 references below; dtype=auto (bf16 CPUs) is in test_device.py
    # the references below score on the CPU; on a GPU machine, fp32 may run as TF32 after a training run
    settings.setdefault("device", "cpu")
    pairs = [f"model={model}", f"input={inp}", f"output={out}", "progress=false"]
    pairs += [f"{k}={v}" for k, v in settings.items()]
    return predict(parse_settings(PredictConfig, pairs, "textft-predict"))


def read(path) -> pd.DataFrame:
    suffix = str(path).rsplit(".", 1)[1]
    return {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True), "parquet": pd.read_parquet}[suffix](
        path
    )


def reference_probs(model_dir, texts, max_length=32) -> np.ndarray:
    """Each text scored alone (no batching, no padding, no sorting): what every batched run must reproduce."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return np.stack(
            [
                model(**tokenizer(t, truncation=True, max_length=max_length, return_tensors="pt"))
                .logits.softmax(-1)[0]
                .numpy()
                for t in texts
            ]
        )


def prob_columns(frame: pd.DataFrame, prefix: str = "") -> list[str]:
    return [c for c in frame.columns if c.startswith(f"{prefix}prob_")]


def test_rows_come_back_in_input_order_with_the_training_encoding(full_run, texts, tmp_path):
    inp = write_csv(tmp_path / "in.csv", [{"id": i, "text": t} for i, t in enumerate(texts)])
    summary = run_predict(full_run, inp, tmp_path / "out.csv", batch_size=4, chunk_size=10)  # 5 chunks, sorted batches
    out = read(tmp_path / "out.csv")
    assert summary["rows"] == len(texts)
    assert out["id"].tolist() == list(range(len(texts))) and out["text"].tolist() == texts
    labels = json.loads((full_run / "config.json").read_text())["id2label"]
    assert prob_columns(out) == [f"prob_{labels[str(i)]}" for i in range(len(labels))]
    expected = reference_probs(full_run, texts)
    np.testing.assert_allclose(out[prob_columns(out)].to_numpy(), expected, atol=1e-5)
    assert out["label"].tolist() == [labels[str(i)] for i in expected.argmax(1)]
    np.testing.assert_allclose(out["score"], expected.max(1), atol=1e-5)
    assert not list(tmp_path.glob(".*")), "the part folder and temp files are gone after a finished run"


@pytest.mark.parametrize(
    "fmt_in,fmt_out", [("jsonl", "parquet"), ("parquet", "jsonl"), ("txt", "csv"), ("tsv", "jsonl")]
)
def test_every_input_format_gives_the_same_predictions(full_run, texts, tmp_path, fmt_in, fmt_out):
    frame = pd.DataFrame({"text": texts, "n": range(len(texts))})
    inp = tmp_path / f"in.{fmt_in}"
    if fmt_in == "jsonl":
        frame.to_json(inp, orient="records", lines=True)
    elif fmt_in == "parquet":
        frame.to_parquet(inp)
    elif fmt_in == "tsv":
        frame.to_csv(inp, sep="\t", index=False)
    else:
        inp.write_text("".join(t + "\n" for t in texts))
    run_predict(full_run, inp, tmp_path / f"out.{fmt_out}", chunk_size=16)
    out = read(tmp_path / f"out.{fmt_out}")
    assert out["text"].tolist() == texts
    assert ("n" in out.columns) == (fmt_in != "txt")
    np.testing.assert_allclose(out[prob_columns(out)].to_numpy(), reference_probs(full_run, texts), atol=1e-5)


def test_an_interrupted_run_resumes_without_redoing_written_chunks(full_run, texts, tmp_path, monkeypatch):
    inp = write_csv(tmp_path / "in.csv", [{"text": t} for t in texts])
    out = tmp_path / "out.parquet"
    real_score = inference.score_rows
    calls = []

    def crash_on_third_chunk(rows, *args, **kwargs):
        calls.append(int(rows.index[0]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_score(rows, *args, **kwargs)

    monkeypatch.setattr(inference, "score_rows", crash_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_predict(full_run, inp, out, chunk_size=10)
    assert not out.exists(), "no output until every chunk is scored"
    assert len(list((tmp_path / ".out.parquet.parts").glob("part-*.parquet"))) == 2

    calls.clear()

    def count(rows, *args, **kwargs):
        calls.append(int(rows.index[0]))
        return real_score(rows, *args, **kwargs)

    monkeypatch.setattr(inference, "score_rows", count)
    summary = run_predict(full_run, inp, out, chunk_size=10)
    assert calls == [20, 30, 40], "only the chunks not yet written are scored"
    assert summary["rows"] == len(texts) and summary["scored_now"] == 25
    result = read(out)
    assert result["text"].tolist() == texts
    np.testing.assert_allclose(result[prob_columns(result)].to_numpy(), reference_probs(full_run, texts), atol=1e-5)


def test_changed_settings_start_over_instead_of_mixing_parts(full_run, texts, tmp_path):
    inp = write_csv(tmp_path / "in.csv", [{"text": t} for t in texts])
    parts = tmp_path / ".out.csv.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text("{}")
    (parts / "part-000000.parquet").write_bytes(b"stale")
    run_predict(full_run, inp, tmp_path / "out.csv", chunk_size=10)
    assert read(tmp_path / "out.csv")["text"].tolist() == texts


def test_lora_adapter_directory_and_merged_model_agree(lora_run, texts, tmp_path):
    assert (lora_run / "adapter" / "adapter_config.json").is_file()
    inp = write_csv(tmp_path / "in.csv", [{"text": t} for t in texts])
    run_predict(lora_run, inp, tmp_path / "merged.csv")
    run_predict(lora_run / "adapter", inp, tmp_path / "adapter.csv")
    merged, adapter = read(tmp_path / "merged.csv"), read(tmp_path / "adapter.csv")
    assert merged["label"].tolist() == adapter["label"].tolist()
    assert set(merged["label"]) <= {"politics", "sport", "tech"}
    np.testing.assert_allclose(merged[prob_columns(merged)], adapter[prob_columns(adapter)], atol=1e-4)


def test_long_text_window_averages_windows_and_leaves_short_texts_alone(full_run, tmp_path):
    from transformers import AutoTokenizer

    short, long = "goal team win", " ".join(["election vote"] * 40 + ["match goal team"] * 40)
    inp = write_csv(tmp_path / "in.csv", [{"text": short}, {"text": long}])
    run_predict(full_run, inp, tmp_path / "cut.csv")
    run_predict(full_run, inp, tmp_path / "win.csv", long_text="window", stride=8)
    cut, win = read(tmp_path / "cut.csv"), read(tmp_path / "win.csv")
    np.testing.assert_allclose(cut.loc[0, prob_columns(cut)], win.loc[0, prob_columns(win)], atol=1e-6)
    # by hand: windows of 30 tokens (32 with [CLS]/[SEP]), each starting 8 tokens before the previous one ends
    tokenizer = AutoTokenizer.from_pretrained(full_run)
    ids = tokenizer(long, add_special_tokens=False)["input_ids"]
    starts = range(0, len(ids) - 8, 30 - 8)
    windows = [tokenizer.decode(ids[i : i + 30]) for i in starts]
    expected = reference_probs(full_run, windows).mean(axis=0)
    np.testing.assert_allclose(win.loc[1, prob_columns(win)].to_numpy(float), expected, atol=1e-5)


def test_labelled_input_keeps_its_label_column(full_run, tmp_path):
    write_csv(tmp_path / "test.csv", keyword_rows(6, seed=9))
    run_predict(full_run, tmp_path / "test.csv", tmp_path / "out.csv")
    out = read(tmp_path / "out.csv")
    assert out["label"].tolist() == [row["label"] for row in keyword_rows(6, seed=9)]
    assert {"pred_label", "pred_score"} <= set(out.columns)


def test_missing_text_column_lists_the_columns(full_run, tmp_path):
    inp = write_csv(tmp_path / "in.csv", [{"body": "a", "id": "b"}])
    with pytest.raises(TextftError, match=r"column 'text' not found .* columns found: body, id; set text_column="):
        run_predict(full_run, inp, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    run_predict(full_run, inp, tmp_path / "out.csv", text_column="body")
    assert read(tmp_path / "out.csv")["body"].tolist() == ["a"]


def test_empty_input_gives_an_empty_output_with_the_columns(full_run, tmp_path, caplog):
    inp = tmp_path / "in.csv"
    inp.write_text("text,id\n")
    summary = run_predict(full_run, inp, tmp_path / "out.csv")
    out = read(tmp_path / "out.csv")
    assert summary["rows"] == 0 and len(out) == 0
    assert out.columns[:4].tolist() == ["text", "id", "label", "score"]
    assert "has no rows" in caplog.text


def test_an_unreadable_row_is_named_by_its_line(full_run, tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"text": broken\n')
    with pytest.raises(TextftError, match=r"line 3 is not valid JSON"):
        run_predict(full_run, inp, tmp_path / "out.csv")


def test_output_folder_must_exist(full_run, tmp_path):
    inp = write_csv(tmp_path / "in.csv", [{"text": "x"}])
    with pytest.raises(TextftError, match=r"folder .*nowhere does not exist; create it"):
        run_predict(full_run, inp, tmp_path / "nowhere" / "out.csv")


def test_command_line_help_and_unknown_settings(capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_module.main(["--help"])
    assert exit_info.value.code == 0 and "textft-predict model=" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        predict_module.main(["model=x", "input=a.csv", "output=b.csv", "batchsize=8"])
    assert exit_info.value.code == 2 and "did you mean 'batch_size'" in capsys.readouterr().err


def test_the_progress_total_is_the_row_count_where_it_is_cheap_and_exact(tmp_path):
    from textft.predict_files import known_rows

    (tmp_path / "a.txt").write_text("one\ntwo\n\nfour\n")
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n\n{"text": "y"}\n')
    pd.DataFrame({"text": ["x", "y", "z"]}).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "a.csv").write_text('text\n"multi\nline"\n')
    rows = {p.name: known_rows(PredictConfig(model="m", input=str(p))) for p in tmp_path.iterdir()}
    assert rows == {"a.txt": 4, "a.jsonl": 2, "a.parquet": 3, "a.csv": None}
