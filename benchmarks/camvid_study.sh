#!/usr/bin/env bash
# The CamVid study, second round, as it was run: tuning stage 1 (the learning rate of BASE+ and of
# LMP + sampler, seed 0: two rates each, then a third beyond the better one), then tuning stage 2 (p and m of LMP + sampler at its best rate), then the
# recipes get the chosen values and the final runs go seed by seed. Run from the repository root in
# the background: nohup setsid benchmarks/camvid_study.sh > runs/study.log 2>&1 &
# (This session ran the two halves as runs/tune1.sh and runs/pipeline.sh, with the same commands.)
# The study ran at commit 9ba0983, when the learning rate was --model.lr and `lr:` in the recipes;
# since then it is --model.optimizer.lr, which this script now uses (the same SGD; the same poly schedule, now torch's PolynomialLR, equal up to rounding).
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
tune_lr() {  # tune_lr <variant> <lr>
  $PY benchmarks/camvid_study.py run --variants "$1" --seeds 0 --tag "_lr$2" \
    --results docs/results/camvid/tuning -- "--model.optimizer.lr=$2"
}
miou() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['miou'])" \
  "docs/results/camvid/tuning/runs/$1_seed0.json"; }
# two rates each, then a third one step further in the direction that won
for spec in "base_plus 0.01" "lmp 0.003" "base_plus 0.003" "lmp 0.01"; do tune_lr $spec; done
third() {  # third <variant> <low> <high> <below low> <above high>
  if $PY -c "import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))" \
      "$(miou "$1_lr$3")" "$(miou "$1_lr$2")"; then echo "$5"; else echo "$4"; fi
}
tune_lr base_plus "$(third base_plus 0.003 0.01 0.001 0.03)"
tune_lr lmp "$(third lmp 0.003 0.01 0.001 0.03)"
best() {  # best <glob prefix>: the tag value with the highest val mIoU
  $PY - "$1" <<'PYEOF'
import json, sys
from pathlib import Path
runs = Path("docs/results/camvid/tuning/runs")
scores = {p.name.split("_seed")[0]: json.loads(p.read_text())["miou"]
          for p in runs.glob(sys.argv[1] + "*_seed0.json")}
print(max(scores, key=scores.get))
PYEOF
}
CE_BEST=$(best base_plus_lr); CE_LR=${CE_BEST#base_plus_lr}
LMP_BEST=$(best lmp_lr); LMP_LR=${LMP_BEST#lmp_lr}
echo "[pipeline] CE lr $CE_LR, LMP lr $LMP_LR"
for pm in "1.3 0.5" "2 0.25" "2 0.5"; do
  set -- $pm
  $PY benchmarks/camvid_study.py run --variants lmp --seeds 0 --tag "_lr${LMP_LR}_p$1_m$2" \
    --results docs/results/camvid/tuning -- "--model.optimizer.lr=$LMP_LR" "--model.loss.p=$1" "--model.loss.m=$2"
done
# the p = 1.3, m = 0.25 point is stage 1's run at that lr
BEST=$($PY - "$LMP_LR" <<'PYEOF'
import json, sys
from pathlib import Path
lr = sys.argv[1]
runs = Path("docs/results/camvid/tuning/runs")
scores = {"1.3 0.25": json.loads((runs / f"lmp_lr{lr}_seed0.json").read_text())["miou"]}
for p in runs.glob(f"lmp_lr{lr}_p*_seed0.json"):
    p_, m_ = p.name.split("_p")[1].split("_seed")[0].split("_m")
    scores[f"{p_} {m_}"] = json.loads(p.read_text())["miou"]
print(max(scores, key=scores.get))
PYEOF
)
set -- $BEST
echo "[pipeline] LMP p $1, m $2"
for v in base base_plus lall; do sed -i "s/init_args: {lr: [^,]*,/init_args: {lr: $CE_LR,/" configs/camvid/$v.yaml; done
for v in lmp_only lmp; do
  sed -i "s/init_args: {lr: [^,]*,/init_args: {lr: $LMP_LR,/; s/init_args: {p: 1.3, m: 0.25}/init_args: {p: $1, m: $2}/" configs/camvid/$v.yaml
done
echo "[pipeline] recipes updated; final runs"
$PY benchmarks/camvid_study.py run --seeds 0 1 2 --variants base_plus lmp base lmp_only lall
$PY benchmarks/camvid_study.py run --seeds 3 4 --variants base_plus lmp
echo "[pipeline] done"
