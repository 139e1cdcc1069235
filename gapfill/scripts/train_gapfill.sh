#!/usr/bin/env bash
# The guide's pipeline against a running gapfill service (make gapfill-serve):
#   initialize -> train parametric UMAP -> train vec2text -> evaluate -> save both models.
# Settings come from the environment:
#   GAPFILL_URL        service address                  (default http://127.0.0.1:8000)
#   DOCS               JSONL/JSON/CSV inside the service's data directory (default scifact_sample.jsonl)
#   TEXT_FIELD         field holding each document's text (default: content, text, ... auto)
#   UMAP_EPOCHS        parametric UMAP epochs           (default 30)
#   V2T_EPOCHS         vec2text epochs                  (default 1)
#   V2T_BATCH_SIZE     vec2text batch size              (default 8)
#   V2T_MAX_SECONDS    vec2text training time limit     (default 600; 0 = no limit)
#   V2T_TRAINABLE      projector | projector+norms | all (default all)
#   NAME               name of the saved models         (default gapfill)
#   COMPARE_UMAP_LEARN true to fit umap-learn beside it in evaluate (default true)
set -euo pipefail

URL="${GAPFILL_URL:-http://127.0.0.1:8000}"
API="$URL/api/advanced-gap-filling"
DOCS="${DOCS:-scifact_sample.jsonl}"
TEXT_FIELD="${TEXT_FIELD:-}"
NAME="${NAME:-gapfill}"

die() { echo "error: $*" >&2; exit 1; }
command -v curl >/dev/null || die "curl is needed"
command -v jq >/dev/null || die "jq is needed"

# POST a JSON body; print the response; fail with the service's message on an HTTP error.
post() {
    local path="$1" body="$2" out code
    out=$(mktemp)
    code=$(curl -sS -o "$out" -w '%{http_code}' -H 'Content-Type: application/json' -X POST "$API/$path" -d "$body") \
        || { rm -f "$out"; die "cannot reach $URL (start it with: make gapfill-serve)"; }
    if [[ "$code" -ge 400 ]]; then
        echo "error: $path -> HTTP $code: $(jq -c '.detail' "$out" 2>/dev/null || cat "$out")" >&2
        rm -f "$out"; exit 1
    fi
    cat "$out"; rm -f "$out"; echo
}

# Wait for the background job; show its progress; fail if it did not finish.
wait_job() {
    local state
    while true; do
        job=$(curl -sS "$API/status" | jq -c '.job')
        state=$(jq -r '.state' <<<"$job")
        printf '\r  %s: %s step %s/%s %s   ' "$(jq -r .kind <<<"$job")" "$state" \
            "$(jq -r .step <<<"$job")" "$(jq -r .total <<<"$job")" "$(jq -c .metrics <<<"$job" | cut -c1-90)"
        [[ "$state" != "running" ]] && break
        sleep 5
    done
    echo
    [[ "$state" == "done" ]] || die "job ended $state: $(jq -r .error <<<"$job")"
}

echo "1/5 initialize with $DOCS"
if [[ -n "$TEXT_FIELD" ]]; then
    post initialize "$(jq -nc --arg p "$DOCS" --arg f "$TEXT_FIELD" '{path: $p, text_field: $f}')"
else
    post initialize "$(jq -nc --arg p "$DOCS" '{path: $p}')"
fi

echo "2/5 train the parametric UMAP"
post train-parametric-umap "$(jq -nc --argjson e "${UMAP_EPOCHS:-30}" '{n_epochs: $e}')" >/dev/null
wait_job

echo "3/5 train vec2text"
post train-vec2text "$(jq -nc --argjson e "${V2T_EPOCHS:-1}" --argjson b "${V2T_BATCH_SIZE:-8}" \
    --argjson s "${V2T_MAX_SECONDS:-600}" --arg t "${V2T_TRAINABLE:-all}" \
    '{epochs: $e, batch_size: $b, max_train_seconds: $s, trainable: $t}')" >/dev/null
wait_job

echo "4/5 evaluate"
post evaluate-quality "$(jq -nc --argjson c "${COMPARE_UMAP_LEARN:-true}" '{compare_umap_learn: $c, vec2text_samples: 5}')" | jq .

echo "5/5 save as '$NAME'"
post save-parametric-umap "$(jq -nc --arg n "$NAME" '{name: $n}')"
post save-vec2text "$(jq -nc --arg n "$NAME" '{name: $n}')"
echo "gaps:"
curl -sS "$API/gaps?max_gaps=5" | jq -c '.gaps[] | {x, y, radius_ratio, near: .nearest_texts[0]}'
echo "open $URL/ for the map"
