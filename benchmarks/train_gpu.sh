#!/usr/bin/env bash
# Train ReFusion weights for all four tasks on one GPU, learned loss (refusion
# loss proposer) and hand-made loss (fixed) side by side: 8 processes at once,
# each stopped cleanly by a wall-clock budget.
#
# Needs: the repo (run from anywhere; it cds to the repo root), gpu_data/*.npz
# from benchmarks/make_patches.py, and python with torch (CUDA), numpy,
# safetensors, click, pluggy (tqdm optional). Nothing is downloaded or
# installed: the repo is put on PYTHONPATH.
#
# Writes to $WORK (default gpu_out/): per run NAME = <task>-<refusion|fixed>:
#   NAME.safetensors (fuser weights + metadata), NAME.json (training card),
#   NAME.csv (losses per step), NAME.ckpt (resumable checkpoint), NAME.log
#   (stdout/stderr); env.txt (versions, GPU) and summary.json (all cards).
# If $OUT is set (the device machine), packs them into three files there:
#   $OUT/summary.json, $OUT/results.tar.gz (all but checkpoints),
#   $OUT/checkpoints.tar (the .ckpt files, for --resume).
#
# Settings (environment): MINUTES (training budget per run, default 6.5),
# DEVICE (cuda), PATCH (64), BATCH (12 pairs; 24 with the swapped copies),
# THREADS (CPU threads per process, 2), TASKS ("ivif mif mfif meif"),
# PROPOSERS ("refusion fixed"), SEED (0), EXTRA (more 'fusekit train' options).
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-gpu_out}
PY=${PYTHON:-python3}
MINUTES=${MINUTES:-6.5}
DEVICE=${DEVICE:-cuda}
PATCH=${PATCH:-64}
BATCH=${BATCH:-12}
THREADS=${THREADS:-2}
TASKS=${TASKS:-"ivif mif mfif meif"}
PROPOSERS=${PROPOSERS:-"refusion fixed"}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}
mkdir -p "$WORK"
export PYTHONPATH="$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
T0=$(date +%s)

# -- preflight: fail in seconds, not after the budget ---------------------------
"$PY" - "$DEVICE" > "$WORK/env.txt" 2>&1 <<'PY'
import importlib.util, platform, sys
missing = [m for m in ("torch", "numpy", "safetensors", "click", "pluggy") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)}")
import torch
print("python", platform.python_version(), "torch", torch.__version__, "host", platform.node())
if sys.argv[1].startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("CUDA is not available; run with DEVICE=cpu")
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB")
from fusekit.plugins import BUILTIN_PLUGINS, build_host
host = build_host(builtins=tuple(dict.fromkeys(BUILTIN_PLUGINS + ("fusekit.training.plugin",))), entry_points=False)
for name in ("refusion", "fixed"):
    host.loss_proposers.get(name)
host.fusers.get("refusion"); host.reconstructors.get("refusion")
print("plugins ok; failures:", [(p.name, p.error) for p in host.failures])
PY
if [ $? -ne 0 ]; then echo "preflight failed:"; cat "$WORK/env.txt"; exit 2; fi
cat "$WORK/env.txt"
for task in $TASKS; do
  [ -f "gpu_data/$task.npz" ] || { echo "gpu_data/$task.npz missing: run python benchmarks/make_patches.py"; exit 2; }
done

# the fusekit CLI, with the built-in 'fixed' loss proposer plugin loaded even if
# fusekit.plugins.BUILTIN_PLUGINS does not list it yet
FUSEKIT=("$PY" -c 'import sys
from fusekit.plugins import BUILTIN_PLUGINS, build_host
from fusekit.cli import make_cli
builtins = tuple(dict.fromkeys(BUILTIN_PLUGINS + ("fusekit.training.plugin",)))
make_cli(build_host(builtins=builtins, entry_points=False))(args=sys.argv[1:], prog_name="fusekit")')

# --max-minutes counts from each command's start and stops training cleanly
# (checkpoint, weights, card). Hard stop 45 s later in case a process hangs:
# SIGINT makes fusekit save a checkpoint, exported below.
LIMIT=$("$PY" -c "print(int(float('$MINUTES') * 60 + 45))")
pids=(); names=()
for task in $TASKS; do
  for lp in $PROPOSERS; do
    name="$task-$lp"
    # shellcheck disable=SC2086
    timeout -s INT -k 30 "$LIMIT" "${FUSEKIT[@]}" train --task "$task" --patches "gpu_data/$task.npz" \
      --loss-proposer "$lp" --device "$DEVICE" --threads "$THREADS" --seed "$SEED" \
      --patch-size "$PATCH" --batch-size "$BATCH" --steps 200000 --max-minutes "$MINUTES" --time-schedule \
      --checkpoint-every 250 --no-progress \
      -o "$WORK/$name.safetensors" --log "$WORK/$name.csv" $EXTRA > "$WORK/$name.log" 2>&1 &
    pids+=($!); names+=("$name")
  done
done
echo "started ${#pids[@]} runs (${MINUTES} min each) at $(date -u +%H:%M:%S)"
if [[ "$DEVICE" == cuda* ]] && command -v nvidia-smi > /dev/null; then
  (sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total --format=csv > "$WORK/nvidia-smi.txt" 2>&1) &
fi
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; rc=$?
  echo "${names[$i]}: exit $rc, $(tail -n 1 "$WORK/${names[$i]}.log")"
  [ $rc -eq 0 ] || status=1
done

"$PY" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
# runs stopped by the hard limit: export the fuser weights of their last checkpoint
from fusekit.training.trainer import read_checkpoint, save_weights
for ckpt in sorted(out.glob("*.ckpt")):
    weights, card = ckpt.with_suffix(".safetensors"), ckpt.with_suffix(".json")
    if weights.exists() and card.exists():
        continue
    try:
        st = read_checkpoint(ckpt)
    except Exception as exc:
        print(f"{ckpt.name}: unreadable ({exc})")
        continue
    recent = json.loads(st.get("recent_losses", "[]"))
    losses = {k: sum(r[k] for r in recent if k in r) / max(1, sum(k in r for r in recent))
              for k in ("fuse", "fuse_int", "fuse_grad", "rec", "meta_rec") if any(k in r for r in recent)}
    meta = {k: st[k] for k in ("method", "task", "loss_proposer", "reconstructor")}
    meta.update(format="fusekit-weights", steps=st["step"], stopped="interrupted",
                train_seconds=round(st["elapsed_s"], 1), final_losses=json.dumps(losses))
    save_weights(st["fuser"], weights, meta)
    card.write_text(json.dumps({**meta, "weights": str(weights), "steps": st["step"],
                                "train_seconds": st["elapsed_s"], "final_losses": losses,
                                "config": json.loads(st["config"])}, indent=2) + "\n")
    print(f"{ckpt.name}: exported step {st['step']} to {weights.name}")
cards = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*-*.json"))}
(out / "summary.json").write_text(json.dumps(cards, indent=2) + "\n")
for name, c in cards.items():
    print(f"{name:16s} steps {c['steps']:6d}  {c['train_seconds']:6.0f} s  {c.get('stopped', '')}  "
          + "  ".join(f"{k} {v:.4f}" for k, v in c["final_losses"].items()))
PY
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"; DEST=$(cd "$OUT" && pwd)
  cp "$WORK/summary.json" "$DEST/summary.json"
  (cd "$WORK" && tar czf "$DEST/results.tar.gz" --exclude='*.ckpt' . && tar cf "$DEST/checkpoints.tar" ./*.ckpt)
  ls -la "$DEST"
fi
echo "total wall time $(( $(date +%s) - T0 )) s"
exit $status
