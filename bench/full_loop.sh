#!/usr/bin/env bash
# The whole loop at the official sizes, as a user runs it: trace -> sae fit -> intervene
# on random-weight TRM bundles of the Sudoku-Extreme shape (TRM-MLP, D512, S81+P16, H3/L6)
# and the ARC shape (TRM-Att RoPE, D512, 8 heads of 64, S900+P16, H3/L4), 16 supervision
# steps, float32, default backend (auto). Bundles and dataset folders come from
# references/python/make_official_shapes.py (--steps first: its torch reference is only the
# first net call); everything goes to a temp folder, removed at the end unless KEEP=1.
#
#   deno task bench:loop                      # both shapes, every stage to its end
#   CASES=trm_mlp_sudoku CAP=600 deno task bench:loop
#
# Environment:
#   CASES        comma-separated: trm_mlp_sudoku, trm_att_arc (default both)
#   EXAMPLES     puzzles traced (default 16)
#   CAP          seconds per stage before it is stopped (default none); a stopped stage
#                reports its wall time, its peak RSS so far and its last progress line
#   INTERVENE_CAP  the same for intervene alone (default CAP)
#   TRAIN_STEPS  sae fit --train-steps (default: sae fit's default)
#   HIDDEN       D of the models (default 512, the official size; small for a smoke test)
#   OUT          folder to use instead of a temp one (kept)
#   KEEP=1       keep the temp folder
#
# Each stage runs under /usr/bin/time -v ("Maximum resident set size"), with --progress so
# the progress lines land in OUT/<case>/<stage>.log; the table gives the 1-minute load
# average at the start and at the end of each stage (the machine may be shared).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
CASES=${CASES:-trm_mlp_sudoku,trm_att_arc}
EXAMPLES=${EXAMPLES:-16}
CAP=${CAP:-}
INTERVENE_CAP=${INTERVENE_CAP:-$CAP}
TRAIN_STEPS=${TRAIN_STEPS:-}
HIDDEN=${HIDDEN:-512}
if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT"
  KEEP=1
else
  OUT=$(mktemp -d /tmp/trminterp-full-loop-XXXXXX)
fi
[[ ${KEEP:-} == 1 ]] || trap 'rm -rf "$OUT"' EXIT
# The flags of `deno task trminterp` (deno.json), run directly so that time(1) measures
# the trminterp process itself.
TRM=(deno run --no-prompt --allow-read --allow-write --allow-ffi "$ROOT/cli.ts")

load1() { cut -d' ' -f1 /proc/loadavg; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(deno --version | head -1); out: $OUT" >&2
IFS=, read -ra cases <<<"$CASES"
for case in "${cases[@]}"; do
  # An OUT given again keeps its bundles (same seed, same files).
  [[ -f $OUT/shapes/$case/float32/model.json ]] && continue
  echo "generating $case (make_official_shapes.py --steps first) ..." >&2
  "$PY" references/python/make_official_shapes.py --out "$OUT/shapes" --seed 0 \
    --cases "$case" --dtypes float32 --steps first --examples "$EXAMPLES" --hidden-size "$HIDDEN" --official-layout >&2
done

ROWS=()
# stage CASE NAME ARGS...: run `trminterp ARGS --progress` under time -v (and the cap),
# append a row named NAME.
stage() {
  local case=$1 name=$2 cap=$CAP
  shift 2
  [[ $name == intervene ]] && cap=$INTERVENE_CAP
  local log="$OUT/$case/${name// /_}.log" tv="$OUT/$case/${name// /_}.time"
  local before after rc=0 wall rss status last
  before=$(load1)
  echo "== $case: trminterp $*" >&2
  if [[ -n $cap ]]; then
    /usr/bin/time -v -o "$tv" timeout --signal=INT --kill-after=30 "$cap" "${TRM[@]}" "$@" --progress >"$log.out" 2>"$log" || rc=$?
  else
    /usr/bin/time -v -o "$tv" "${TRM[@]}" "$@" --progress >"$log.out" 2>"$log" || rc=$?
  fi
  after=$(load1)
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.1f", s}' "$tv")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$tv")
  last=$(grep -E '^(trace|sae fit|intervene)' "$log" | tail -1 || true)
  if [[ $rc == 0 ]]; then status=done; elif [[ $rc == 124 ]]; then status="stopped at ${cap}s"; else status="exit $rc"; fi
  # The first three progress lines and the last.
  grep -E '^(trace|sae fit|intervene)' "$log" | awk 'NR <= 3 {print "   " $0; next} {l = $0} END {if (l != "") print "   " l}' >&2 || true
  [[ $rc == 0 || $rc == 124 ]] || { cat "$log" >&2; }
  ROWS+=("$(printf '| %-15s | %-9s | %8s | %8s | %-11s | %-14s | %s |' "$case" "$name" "$wall" "$rss" "$before / $after" "$status" "$last")")
}

for case in "${cases[@]}"; do
  bundle="$OUT/shapes/$case/float32"
  data=$(find "$OUT/shapes/$case/data" -mindepth 1 -maxdepth 1 -type d | head -1)
  run="$OUT/$case/run"
  mkdir -p "$OUT/$case"
  case $case in
    trm_mlp_sudoku) positions=puzzle ;;    # the 81 cells (16..96)
    trm_att_arc) positions=16-143 ;;       # the first 128 of the 900 cells
    *) positions=puzzle ;;
  esac
  # z_H after the last H cycle of each supervision step: 16 steps.
  stage "$case" trace trace --run-dir "$run" --model "$bundle" --inputs "$data" --seed 0 \
    --latents z_H --steps 's*.h2.H' --positions "$positions"
  [[ -f $run/trace.jsonl ]] || continue
  sae=(--run-dir "$run" --seed 0)
  [[ -n $TRAIN_STEPS ]] && sae+=(--train-steps "$TRAIN_STEPS")
  stage "$case" "sae fit" sae fit "${sae[@]}"
  [[ -f $run/sae.pt ]] || continue
  stage "$case" intervene intervene --run-dir "$run" --policy ablate_features --seed 0
done

echo
echo "| case            | stage     |   wall s | peak MB  | load1 start / end | status         | last progress line |"
echo "| --------------- | --------- | -------: | -------: | ----------- | -------------- | ------------------ |"
printf '%s\n' "${ROWS[@]}"
