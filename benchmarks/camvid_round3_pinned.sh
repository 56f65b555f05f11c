#!/usr/bin/env bash
# Round three's final runs (benchmarks/camvid_round3_final.sh) with the code of its tuning runs,
# commit eb54ac9, so that later changes to the package cannot change what they compute: the
# script of that commit runs from a git worktree of it (../round3 beside this checkout), with
# that worktree first on PYTHONPATH, writing into this checkout's runs/camvid_round3 and
# docs/results/camvid/round3 (resumable like the script itself). Run from the repository root:
#   nohup setsid benchmarks/camvid_round3_pinned.sh >> runs/round3_final.log 2>&1 &
# The runs come in another order than the pinned script's: the second and third seeds of BASE+ and
# LMP + sampler before the one-seed ablations (BASE, LMP only), so that the comparison and the zoo
# entries are complete first; each run computes what it would in the pinned order (every run
# starts from its own seed, and a finished run is skipped).
# A resume of the pinned code from a checkpoint written at an epoch's end can count the next
# epoch without training a step in it (Lightning counts the epoch, the data module of eb54ac9 has
# no batch left for it), so 96 epochs could fall short of 4320 steps. Each run therefore stops at
# 4320 steps (--trainer.max_steps; the schedule's length is 4320 as with 96 epochs, and an
# uninterrupted run trains exactly the 96 epochs it did), and the study's own finished-run check,
# which counts epochs, gets 96 or, for a run stopped short of its steps after 96 epochs counted,
# one more than it has (benchmarks/camvid_round3_epochs.py). The current package resumes through
# Lightning's loader state instead.
# With --print it only prints the script it would run.
set -e
cd "$(dirname "$0")/.."
REPO=$(pwd)
PIN=eb54ac9
TREE=$(cd .. && pwd)/round3
[ -d "$TREE" ] || git worktree add -q "$TREE" "$PIN"
[ "$(git -C "$TREE" rev-parse --short=7 HEAD)" = "$PIN" ] || { echo "$TREE is not at $PIN" >&2; exit 2; }
DRIVER=$(sed \
  -e "s#^cd \"\$(dirname \"\$0\")/..\"#cd $TREE\nexport PYTHONPATH=$TREE#" \
  -e "s#^PY=.venv/bin/python#PY=$REPO/.venv/bin/python#" \
  -e "s#^RESULTS=docs/results/camvid/round3#RESULTS=$REPO/docs/results/camvid/round3#" \
  -e "s#--runs runs/camvid_round3#--runs $REPO/runs/camvid_round3#g" \
  -e '/^final base 0 /d' -e '/^final lmp_only 0 /d' \
  -e 's#^SCHEDULE=("--trainer.max_epochs=96" #SCHEDULE=(#' \
  -e 's#-- "--model.optimizer.lr=\$3" "\${SCHEDULE\[@\]}"#-- "--model.optimizer.lr=$3" "--trainer.max_epochs=$(epochs_for "$1" "$2")" "${SCHEDULE[@]}" "--trainer.max_epochs=1000" "--trainer.max_steps=4320"#' \
  -e "s#^final() {#epochs_for() {  \# epochs_for <variant> <seed>: the epochs the study's check counts as finished\n  $REPO/.venv/bin/python $REPO/benchmarks/camvid_round3_epochs.py $REPO/runs/camvid_round3/\$1/seed\$2\n}\nfinal() {#" \
  -e 's#^done$#done\nfinal base 0 "$CE_LR"\nfinal lmp_only 0 "$LMP_LR"#' \
  "$TREE/benchmarks/camvid_round3_final.sh")
if [ "${1:-}" = "--print" ]; then
  printf '%s\n' "$DRIVER"
else
  bash -c "$DRIVER"
fi
