#!/usr/bin/env bash
# The real offline runs behind the README's "Experiment tools" section (MiniLM on BBC News, CPU), in this order:
#   1. a small run that draws the learning curves (and is the model exported in 3)
#   2. a 5-trial search on a BBC subset (max_length 64, 1 epoch per trial, evaluated every 5 steps for the pruner)
#   3. ONNX export of run 1 with the parity check on 128 real test rows, then textft-predict through ONNX Runtime
# Results are copied to benchmarks/results/experiment_tools/. Prepare the assets first: python -m textft.assets bbc minilm
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
out=${OUT:-outputs/experiment_tools}
results=benchmarks/results/experiment_tools
mkdir -p "$results"
uptime

textft-train recipe=bbc_minilm output_dir="$out/bbc_minilm_curves" data.max_train_samples=480 data.max_eval_samples=100 \
  train.num_train_epochs=2 train.eval_strategy=steps train.eval_steps=10 train.save_steps=10 train.logging_steps=5
cp "$out/bbc_minilm_curves/learning_curves.png" "$results/bbc_minilm_learning_curves.png"
cp "$out/bbc_minilm_curves/metrics.json" "$results/bbc_minilm_curves_metrics.json"
uptime

textft-search recipe=bbc_minilm_search output_dir="$out/bbc_minilm_search" search.n_trials=5 search.startup_trials=2 \
  data.max_train_samples=320 data.max_eval_samples=100 data.max_length=64 train.num_train_epochs=1 \
  train.eval_strategy=steps train.eval_steps=5 train.save_steps=5 train.save_total_limit=1 train.logging_steps=5
cp "$out/bbc_minilm_search/search/trials.csv" "$results/search_trials.csv"
cp "$out/bbc_minilm_search/search/best_recipe.yaml" "$results/search_best_recipe.yaml"
uptime

textft-export "$out/bbc_minilm_curves" rows=128
cp "$out/bbc_minilm_curves/onnx/export_report.json" "$results/export_report.json"
for model in "$out/bbc_minilm_curves" "$out/bbc_minilm_curves/onnx"; do
  textft-predict model="$model" input=data/bbc/test.csv output="$model/scored_test.csv" progress=false
done
uptime
