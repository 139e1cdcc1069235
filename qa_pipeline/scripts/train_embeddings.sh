#!/usr/bin/env bash
# Fine-tune an embedding model on generated Q&A pairs: check dependencies, input data and GPU,
# show the configuration, train (through qa_pipeline.finetune -> embeddingFT), report.
#
#   scripts/train_embeddings.sh [--config FILE] [--input FILE] [--output DIR] [--model NAME]
#                               [--epochs N] [--batch_size N] [-y|--yes] [key=value ...]
# Run from qa_pipeline/ (paths are relative to it) or from anywhere with absolute paths.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x "$HERE/../.venv/bin/python" ]]; then PY="$HERE/../.venv/bin/python"; else PY="python3"; fi
fi
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

if [[ -t 1 ]]; then RED=$'\033[0;31m'; GREEN=$'\033[0;32m'; YELLOW=$'\033[1;33m'; NC=$'\033[0m'; else RED=""; GREEN=""; YELLOW=""; NC=""; fi

CONFIG="config/embedding_finetuner.json"
[[ -f "$CONFIG" ]] || CONFIG="$HERE/config/embedding_finetuner.json"
INPUT="" OUTPUT="" MODEL="" EPOCHS="" BATCH="" YES=0
EXTRA=()
usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --config) CONFIG="$2"; shift 2 ;;
        --input) INPUT="$2"; shift 2 ;;
        --output) OUTPUT="$2"; shift 2 ;;
        --model) MODEL="$2"; shift 2 ;;
        --epochs) EPOCHS="$2"; shift 2 ;;
        --batch_size) BATCH="$2"; shift 2 ;;
        -y|--yes) YES=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *=*) EXTRA+=("$1"); shift ;;
        *) echo "${RED}unknown option: $1${NC} (see --help)" >&2; exit 2 ;;
    esac
done

ARGS=(--config "$CONFIG")
[[ -n "$INPUT" ]] && ARGS+=(--input_jsonl "$INPUT")
[[ -n "$OUTPUT" ]] && ARGS+=(--output_dir "$OUTPUT")
[[ -n "$MODEL" ]] && ARGS+=(--base_model "$MODEL")
[[ -n "$EPOCHS" ]] && ARGS+=(--epochs "$EPOCHS")
[[ -n "$BATCH" ]] && ARGS+=(--batch_size "$BATCH")
ARGS+=("${EXTRA[@]}")

echo "${GREEN}== Embedding fine-tuning (qa_pipeline -> embeddingFT) ==${NC}"

echo "${YELLOW}Checking dependencies...${NC}"
if ! "$PY" -c "import torch, sentence_transformers, embedding_ft, qa_pipeline" 2>/dev/null; then
    echo "${RED}missing dependencies for $PY: run \`make setup\` at the repository root${NC}" >&2
    exit 1
fi
echo "  ok: torch, sentence-transformers, embedding_ft, qa_pipeline ($PY)"

# The resolved configuration (file, then flags, then key=value) as the trainer will see it.
RESOLVED="$("$PY" - "${ARGS[@]}" <<'PYEOF'
import json, sys
from qa_pipeline.cli.finetune import config_from_argv
from embshared.config import config_to_dict
from embshared.errors import UserError
try:
    cfg = config_from_argv(sys.argv[1:])
except UserError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
print(json.dumps(config_to_dict(cfg)))
PYEOF
)" || exit 2
field() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])$1)" "$RESOLVED"; }
INPUT_JSONL="$(field '["input_jsonl"]')"
OUTPUT_DIR="$(field '["output_dir"]')"

echo "${YELLOW}Checking input data...${NC}"
if [[ ! -s "$INPUT_JSONL" ]]; then
    echo "${RED}input not found or empty: $INPUT_JSONL${NC}" >&2
    echo "generate Q&A pairs first: python -m qa_pipeline.generate --config config/qa_generator.json" >&2
    exit 1
fi
PAIRS="$(grep -c '"question"' "$INPUT_JSONL" || true)"
PAPERS="$("$PY" -c "import json,sys; print(len({json.loads(l).get('paper_id') for l in open(sys.argv[1]) if l.strip()}))" "$INPUT_JSONL")"
echo "  $PAIRS Q&A pairs from $PAPERS paper(s) in $INPUT_JSONL"

echo "${YELLOW}Checking GPU...${NC}"
GPU="$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')")"
if [[ -n "$GPU" ]]; then echo "  GPU: $GPU"; else echo "  no GPU: training runs on CPU (slower; prefer small batches and max_seq_length)"; fi

echo "${YELLOW}Configuration:${NC}"
"$PY" -c "
import json, sys
cfg = json.loads(sys.argv[1])
for key in ('input_jsonl', 'output_dir', 'base_model', 'num_epochs', 'train_batch_size', 'learning_rate',
            'warmup_steps', 'loss_function', 'evaluation_steps', 'save_steps', 'max_seq_length', 'train_split'):
    print(f'  {key:18s} {cfg[key]}')
print(f\"  {'mining':18s} {'on' if cfg['mining']['enabled'] else 'off'} ({cfg['mining']['num_negatives']} negative(s))\")
" "$RESOLVED"

if [[ $YES -eq 0 && -t 0 ]]; then
    read -r -p "Start training? [y/N] " REPLY
    [[ "$REPLY" =~ ^[Yy]$ ]] || { echo "cancelled"; exit 0; }
fi

echo "${GREEN}Training...${NC}"
if ! "$PY" -m qa_pipeline.finetune "${ARGS[@]}"; then
    echo "${RED}training failed; see $OUTPUT_DIR/logs/embedding_finetuning.log and $OUTPUT_DIR/training_progress.json${NC}" >&2
    exit 1
fi

echo "${GREEN}Done.${NC}"
"$PY" -c "
import json, sys
p = json.load(open(sys.argv[1]))
print(f\"  completed: {p['training_completed']}  duration: {p['duration_seconds']} s  steps: {p['global_step']}\")
print(f\"  train / validation pairs: {p['train_examples']} / {p['eval_examples']}\")
for system, values in (p.get('metrics') or {}).items():
    print(f\"  {system:10s} ndcg@10={values.get('ndcg@10', float('nan')):.4f}  mrr@10={values.get('mrr@10', float('nan')):.4f}\")
print(f\"  model: {p['final_model_path']}\")
" "$OUTPUT_DIR/training_progress.json"
echo "Next: python examples/use_finetuned_embeddings.py --model $OUTPUT_DIR/final_model"
