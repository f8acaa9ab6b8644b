#!/usr/bin/env bash
# The experiment's stages on a Slurm cluster: wave after wave, every stage whose inputs are
# finished runs as one task of an array; when none is left, one last run writes the report.
# OUT must be on storage every node shares. Submit from the repository root:
#   CONFIG=experiments/small.yaml OUT=/shared/out/small REAL=/shared/prid450s.yaml \
#     bash deploy/slurm/experiment-stages.sh
set -euo pipefail
: "${CONFIG:?an experiment YAML}" "${OUT:?a folder every node sees}"
ARGS=("$CONFIG" --out "$OUT")
[ -n "${REAL:-}" ] && ARGS+=(--real "$REAL")

ready() {  # stages not done whose inputs all are
  synthreid experiment "${ARGS[@]}" --list-stages --json | python3 -c '
import json, sys
rows = json.load(sys.stdin)
done = {r["name"] for r in rows if r["done"]}
print(" ".join(r["name"] for r in rows
               if not r["done"] and not r["left_out"] and set(r["needs"]) <= done))'
}

while true; do
  read -r -a STAGES <<< "$(ready)"
  [ "${#STAGES[@]}" -eq 0 ] && break
  printf '%s\n' "${STAGES[@]}" > "$OUT/.wave"
  # One task per ready stage; sbatch --wait returns when the whole array has ended. Each
  # task's math threads are its cores, so tasks sharing a node do not thrash.
  SYNTHREID_TORCH_THREADS="${CPUS:-8}" sbatch --export=ALL --wait --array=0-$(( ${#STAGES[@]} - 1 )) --cpus-per-task="${CPUS:-8}" \
    --job-name=synthreid-stage --wrap \
    "synthreid experiment ${ARGS[*]} --stage \$(sed -n \"\$((SLURM_ARRAY_TASK_ID + 1))p\" $OUT/.wave)"
done
synthreid experiment "${ARGS[@]}"   # every stage is finished: this writes the report only
