#!/usr/bin/env bash
# The CamVid study, third round, stage 2 (docs/results/camvid.md): a budget at which the baseline
# converges. 96 epochs of 45 steps (4320 SGD steps, 6.9x round two's 630) on 176x176 crops of the
# 240x180 frames, each loss at its own best rate from stage 1 (benchmarks/camvid_round3.sh):
# BASE+ and LMP + sampler with seeds 0, 1 and 2, BASE (the cross-entropy's rate) and LMP only
# (LMP's rate) with seed 0, seed by seed so that a cut-off study still has complete pairs. About
# an hour a run on the 2-core CPU (8 runs). Resumable like stage 1. Run from the repository root
# in the background, after stage 1:
#   nohup setsid benchmarks/camvid_round3_final.sh > runs/round3_final.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
TUNING=docs/results/camvid/round3/tuning
RESULTS=docs/results/camvid/round3
best_lr() {  # best_lr <variant>: the rate of the variant's best stage-1 run
  $PY - "$1" "$TUNING" <<'PYEOF'
import json, sys
from pathlib import Path
variant, runs = sys.argv[1], Path(sys.argv[2]) / "runs"
scores = {}
for path in runs.glob(f"{variant}_lr*_seed0.json"):
    rate = path.name[len(variant) + 3 : -len("_seed0.json")]
    if rate.replace(".", "").isdigit():  # not the paired check (_lr0.03_before)
        scores[rate] = json.loads(path.read_text())["miou"]
best = max(scores, key=scores.get)
rates = sorted(scores, key=float)
if best == rates[-1]:
    sys.exit(f"{variant}: the best rate {best} is the top of its grid {rates}: not bracketed")
print(best)
PYEOF
}
CE_LR=$(best_lr base_plus)
LMP_LR=$(best_lr lmp)
echo "[round3] cross-entropy lr $CE_LR, LMP lr $LMP_LR"
SCHEDULE=("--trainer.max_epochs=96" "--trainer.check_val_every_n_epoch=2" "--data.crop_size=176")
final() {  # final <variant> <seed> <lr>
  $PY benchmarks/camvid_study.py run --variants "$1" --seeds "$2" \
    --runs runs/camvid_round3 --results "$RESULTS" -- "--model.optimizer.lr=$3" "${SCHEDULE[@]}"
}
final base_plus 0 "$CE_LR"
final lmp 0 "$LMP_LR"
final base 0 "$CE_LR"
final lmp_only 0 "$LMP_LR"
for seed in 1 2; do
  final base_plus "$seed" "$CE_LR"
  final lmp "$seed" "$LMP_LR"
done
$PY benchmarks/camvid_study.py report --results "$RESULTS" --runs runs/camvid_round3
