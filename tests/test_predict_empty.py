"""textft-predict on rows without an input: no made-up label, an empty prediction and a flag, the count at the end."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from test_predict import prob_columns, read, reference_probs, run_predict


def test_null_and_blank_inputs_get_no_prediction_and_a_flag(full_run, tmp_path, caplog):
    texts = ["the football match", None, "a new computer", "   ", "the election result", None, None, "football again"]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    with caplog.at_level(logging.WARNING, logger="textft"):
        summary = run_predict(full_run, inp, tmp_path / "out.parquet", chunk_size=3)  # chunk 2: no input at all
    assert summary["rows"] == len(texts) and summary["empty_inputs"] == 4
    assert "4 of 8 rows had an empty or null input" in caplog.text

    out = read(tmp_path / "out.parquet")
    empty = np.array([t is None or not t.strip() for t in texts])
    assert out["id"].tolist() == list(range(len(texts))) and out["empty_input"].tolist() == empty.tolist()
    assert out.loc[empty, ["label", "score", *prob_columns(out)]].isna().all().all()
    present = [t for t in texts if t and t.strip()]
    assert out.loc[~empty, "label"].notna().all()
    np.testing.assert_allclose(
        out.loc[~empty, prob_columns(out)].to_numpy(), reference_probs(full_run, present), atol=1e-5
    )


def test_a_blank_csv_cell_is_flagged_and_the_csv_output_leaves_its_prediction_empty(full_run, tmp_path):
    inp = tmp_path / "in.csv"
    pd.DataFrame({"text": ["the football match", "", "a new computer"]}).to_csv(inp, index=False)
    summary = run_predict(full_run, inp, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert summary["empty_inputs"] == 1
    assert out["label"].tolist()[1] == "" and out["score"].tolist()[1] == ""
    assert out["empty_input"].tolist() == ["False", "True", "False"] or out["empty_input"].tolist() == [
        False,
        True,
        False,
    ]
