# gapfill: parametric UMAP + vec2text gap filling, served over HTTP with a map page.
# Lower-case key=value on the make line are forwarded as config overrides to gapfill-serve
# and gapfill-train-vec2text (one of them per call), e.g.
#   make gapfill-serve port=8080 umap.n_epochs=50
#   make gapfill-train-vec2text max_train_seconds=1800 batch_size=8
#   make bench-gapfill GAPFILL_UMAP_BENCH_ARGS="umap.n_epochs=5" GAPFILL_V2T_BENCH_ARGS="n_targets=20"

GAPFILL_DIR := gapfill
GAPFILL_CONFIG ?= $(GAPFILL_DIR)/configs/service.yaml
GAPFILL_URL ?= http://127.0.0.1:8000
GAPFILL_THREADS ?=
GAPFILL_V2T_MODEL ?= $(GAPFILL_DIR)/models/vec2text/stsb-prefix
GAPFILL_V2T_SECONDS ?= 4200
GAPFILL_UMAP_BENCH_ARGS ?=
GAPFILL_V2T_BENCH_ARGS ?=
GAPFILL_GAPS_BENCH_ARGS ?=
GAPFILL_SHARED_DATA ?= ../shared/data
GAPFILL_FILL_OUT ?= $(GAPFILL_DIR)/outputs/gaps.jsonl

CLEAN_PATHS += $(GAPFILL_DIR)/bench/results/*/.*.tmp $(GAPFILL_DIR)/bench/cache

.PHONY: gapfill-serve gapfill-data gapfill-pipeline gapfill-fill gapfill-train-vec2text bench-gapfill test-gapfill
gapfill-serve: setup ## gapfill: serve the API and map page on 127.0.0.1:8000 (GAPFILL_CONFIG; key=value overrides)
	$(PY) -m gapfill.cli serve --config $(GAPFILL_CONFIG) $(if $(GAPFILL_THREADS),--threads $(GAPFILL_THREADS)) $(OVERRIDES)

gapfill-data: setup ## gapfill: copy the bundled SciFact sample into the service's data directory
	mkdir -p $(GAPFILL_DIR)/data
	cp data/samples/scifact/corpus.jsonl $(GAPFILL_DIR)/data/scifact_sample.jsonl

gapfill-pipeline: gapfill-data ## gapfill: initialize -> train UMAP -> train vec2text -> evaluate -> save, against a running service
	GAPFILL_URL=$(GAPFILL_URL) TEXT_FIELD=$${TEXT_FIELD:-title} $(GAPFILL_DIR)/scripts/train_gapfill.sh

gapfill-fill: setup ## gapfill: text for every gap of a running service's map -> GAPFILL_FILL_OUT (JSONL: gap -> text -> landing)
	$(PY) -m gapfill.cli fill --url $(GAPFILL_URL) --output $(GAPFILL_FILL_OUT)

gapfill-train-vec2text: setup ## gapfill: train the vec2text prefix model on STS-B train sentences for GAPFILL_V2T_SECONDS (70 min)
	$(PY) -m gapfill.cli train-vec2text --threads $(or $(GAPFILL_THREADS),1) \
		--texts stsb:$(GAPFILL_SHARED_DATA)/stsbenchmark --output $(GAPFILL_V2T_MODEL) \
		batch_size=16 max_length=32 trainable=projector+norms learning_rate=1e-3 correction_fraction=0.25 \
		warmup_steps=30 max_train_seconds=$(GAPFILL_V2T_SECONDS) $(OVERRIDES)

$(GAPFILL_V2T_MODEL)/projector.safetensors:
	$(MAKE) gapfill-train-vec2text

bench-gapfill: setup $(GAPFILL_V2T_MODEL)/projector.safetensors ## gapfill: fit vs umap-learn, text landing in the gaps, vec2text on held-out sentences -> gapfill/bench/results/interactive/
	$(PY) $(GAPFILL_DIR)/bench/bench_umap.py $(GAPFILL_UMAP_BENCH_ARGS)
	$(PY) $(GAPFILL_DIR)/bench/bench_gaps.py $(GAPFILL_GAPS_BENCH_ARGS)
	$(PY) $(GAPFILL_DIR)/bench/bench_vec2text.py model=$(GAPFILL_V2T_MODEL) n_gaps=0 $(GAPFILL_V2T_BENCH_ARGS)
	$(PY) $(GAPFILL_DIR)/bench/bench_summary.py

test-gapfill: setup ## gapfill: run its fast tests
	$(PY) -m pytest tests/gapfill -m "not slow" $(PYTEST_ARGS)
