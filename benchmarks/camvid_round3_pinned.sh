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
  -e 's#^done$#done\nfinal base 0 "$CE_LR"\nfinal lmp_only 0 "$LMP_LR"#' \
  "$TREE/benchmarks/camvid_round3_final.sh")
if [ "${1:-}" = "--print" ]; then
  printf '%s\n' "$DRIVER"
else
  bash -c "$DRIVER"
fi
