# jsonembed: a character-level JSON record embedder trained from scratch (package embedding_model,
# jsonembed/src/embedding_model; commands `python -m embedding_model.cli.train|search|embed|evaluate`).
# Config keys given on the make line are forwarded as overrides (see OVERRIDES in the Makefile):
#   make json-train JSON_DATA=my_records.jsonl JSON_MODEL=my_model.pt epochs=5 char_dim=48
#   make json-search JSON_QUERY="high quality electronics" JSON_TOPK=5 JSON_FLAGS="--explain --hybrid"
#
# Every make variable here starts with JSON_ (other mk files have their own MODEL, DATA, SEED, EPOCHS,
# ...; none of those reaches these targets). JSON_DATA, JSON_MODEL and JSON_QUERY are the names the
# jsonembed README documents, so the prefix is the documented one and no unprefixed alias is needed.

JSON_DIR := jsonembed
JSON_CONFIG ?= $(JSON_DIR)/config/default.yaml
JSON_DATA ?= data/samples/scifact/corpus.jsonl
JSON_MODEL ?= $(JSON_DIR)/runs/model.pt
JSON_QUERY ?= vitamin D deficiency and bone fractures
JSON_TOPK ?= 5
JSON_FLAGS ?=
JSON_EPOCHS ?=
JSON_EMBED_OUTPUT ?= $(JSON_DIR)/runs/embeddings.npy
JSON_QUERIES ?= data/samples/scifact/queries.jsonl
JSON_QRELS ?= data/samples/scifact/qrels/train.tsv
JSON_EVAL_OUTPUT ?= $(JSON_DIR)/runs/eval.json
JSON_BENCH_ARGS ?=

CLEAN_PATHS += $(JSON_DIR)/runs $(JSON_DIR)/bench/runs $(JSON_DIR)/bench/results/*.tmp

.PHONY: json-train json-search json-embed json-eval bench-json
json-train: setup ## Train a jsonembed model on JSON_DATA (JSONL) into JSON_MODEL; key=value overrides
	$(PY) -m embedding_model.cli.train $(JSON_DATA) --output $(JSON_MODEL) --config $(JSON_CONFIG) \
		$(if $(JSON_EPOCHS),--epochs $(JSON_EPOCHS)) $(OVERRIDES)

json-search: setup ## Search JSON_DATA with JSON_MODEL for JSON_QUERY (JSON_FLAGS="--explain --hybrid")
	$(PY) -m embedding_model.cli.search --model $(JSON_MODEL) --data $(JSON_DATA) --query "$(JSON_QUERY)" \
		--topk $(JSON_TOPK) --cache-dir $(JSON_DIR)/runs/cache $(JSON_FLAGS)

json-embed: setup ## Embed JSON_DATA with JSON_MODEL into JSON_EMBED_OUTPUT (.npy)
	$(PY) -m embedding_model.cli.embed --model $(JSON_MODEL) --input $(JSON_DATA) --output $(JSON_EMBED_OUTPUT)

json-eval: setup ## Recall@K, MRR, NDCG@10 of JSON_MODEL vs BM25 and the hybrid on JSON_DATA/JSON_QUERIES/JSON_QRELS
	$(PY) -m embedding_model.cli.evaluate --model $(JSON_MODEL) --data $(JSON_DATA) --queries $(JSON_QUERIES) \
		--qrels $(JSON_QRELS) --output $(JSON_EVAL_OUTPUT) --cache-dir $(JSON_DIR)/runs/cache

bench-json: setup ## Benchmark jsonembed: quality on SciFact + Cranfield, clean and misspelled queries, vs BM25/MiniLM; speed (jsonembed/bench/results/default)
	$(PY) $(JSON_DIR)/bench/bench_quality.py $(JSON_BENCH_ARGS) $(OVERRIDES)
	$(PY) $(JSON_DIR)/bench/bench_speed.py $(JSON_BENCH_ARGS) $(OVERRIDES)
