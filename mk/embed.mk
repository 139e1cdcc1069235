# embeddingFT: contrastive fine-tuning with hard-negative mining (the workspace's main job).
# Config keys given on the make line are forwarded as overrides (see OVERRIDES in the Makefile):
#   make train-embed EMBED_CONFIG=embeddingFT/configs/default.yaml batch_size=16 mining.num_negatives=3
#
# Make variables are EMBED_-prefixed (other mk files have their own MODEL, DATA, SEED, ...). The names
# the embeddingFT guide and README document (MODEL, DATA, TEXTS, INPUT, OUTPUT, FIELD, TEST_SIZE, SEED,
# BACKEND, QUANT, FILE_NAME, DOCS, INDEX, FROM_INDEX, QUERY, TOPK, HYBRID, JSON, EXPORT_OUTPUT, NPROC, NNODES,
# NODE_RANK, MASTER_ADDR, MASTER_PORT, TB_PORT, TB_LOGDIR, BENCH_*_ARGS) work when given on the command
# line or in the environment and stand for EMBED_<name> (an EMBED_ name wins).

EMBED_DIR := embeddingFT
EMBED_CONFIG ?= $(EMBED_DIR)/configs/default.yaml
EMBED_NPROC ?= $(or $(call guide_name,NPROC),1)
EMBED_NNODES ?= $(or $(call guide_name,NNODES),1)
EMBED_NODE_RANK ?= $(or $(call guide_name,NODE_RANK),0)
EMBED_MASTER_ADDR ?= $(or $(call guide_name,MASTER_ADDR),127.0.0.1)
EMBED_MASTER_PORT ?= $(or $(call guide_name,MASTER_PORT),29500)
EMBED_TB_PORT ?= $(or $(call guide_name,TB_PORT),6006)
EMBED_TB_LOGDIR ?= $(or $(call guide_name,TB_LOGDIR),$(EMBED_DIR)/outputs)
EMBED_MODEL ?= $(or $(call guide_name,MODEL),$(EMBED_DIR)/outputs/latest/final_model)
EMBED_DATA ?= $(or $(call guide_name,DATA),data/samples/scifact)
EMBED_TEXTS ?= $(call guide_name,TEXTS)
EMBED_INPUT ?= $(call guide_name,INPUT)
EMBED_OUTPUT ?= $(call guide_name,OUTPUT)
EMBED_FIELD ?= $(or $(call guide_name,FIELD),text)
EMBED_TEST_SIZE ?= $(call guide_name,TEST_SIZE)
EMBED_SEED ?= $(or $(call guide_name,SEED),42)
EMBED_BENCH_EMBED_ARGS ?= $(call guide_name,BENCH_EMBED_ARGS)
EMBED_BACKEND ?= $(or $(call guide_name,BACKEND),torch)
EMBED_QUANT ?= $(or $(call guide_name,QUANT),int8)
EMBED_FILE_NAME ?= $(call guide_name,FILE_NAME)
EMBED_DOCS ?= $(or $(call guide_name,DOCS),data/samples/scifact)
EMBED_INDEX ?= $(or $(call guide_name,INDEX),$(EMBED_DIR)/indexes/latest)
EMBED_FROM_INDEX ?= $(call guide_name,FROM_INDEX)
EMBED_QUERY ?= $(call guide_name,QUERY)
EMBED_TOPK ?= $(or $(call guide_name,TOPK),10)
EMBED_HYBRID ?= $(call guide_name,HYBRID)
EMBED_JSON ?= $(call guide_name,JSON)
EMBED_WEIGHT ?= $(call guide_name,WEIGHT)
EMBED_EXPORT_OUTPUT ?= $(call guide_name,EXPORT_OUTPUT)
EMBED_BENCH_EXPORT_ARGS ?= $(call guide_name,BENCH_EXPORT_ARGS)
EMBED_BENCH_RECIPES_ARGS ?= $(call guide_name,BENCH_RECIPES_ARGS)

# One process: plain python. Several: accelerate launch with its multi-process (torch.distributed)
# launcher; the training code picks the backend: gloo on CPU, NCCL on GPUs.
# (accelerate's own --cpu mode needs mpirun for more than one process.)
ifeq ($(EMBED_NPROC)$(EMBED_NNODES),11)
EMBED_RUN = $(PY)
else
EMBED_RUN = $(VENV)/bin/accelerate launch --multi_gpu --num_processes $(shell echo $$(($(EMBED_NPROC) * $(EMBED_NNODES)))) \
	--num_machines $(EMBED_NNODES) --machine_rank $(EMBED_NODE_RANK) --main_process_ip $(EMBED_MASTER_ADDR) \
	--main_process_port $(EMBED_MASTER_PORT) --mixed_precision no --dynamo_backend no
endif

CLEAN_PATHS += $(EMBED_DIR)/outputs $(EMBED_DIR)/checkpoints $(EMBED_DIR)/bench/results/*.tmp $(EMBED_DIR)/bench/work

BACKEND_ARGS = --backend $(EMBED_BACKEND) $(if $(EMBED_FILE_NAME),--file-name $(EMBED_FILE_NAME))

.PHONY: setup-embed-dirs train-embed train-embed-tb infer-embed eval-embed bench-embed export-embed index-embed search-embed bench-export bench-recipes
setup-embed-dirs: ## Create embeddingFT/{configs,scripts,data,models,checkpoints,outputs}
	mkdir -p $(addprefix $(EMBED_DIR)/,configs scripts data models checkpoints outputs)

train-embed: setup setup-embed-dirs ## Fine-tune on EMBED_CONFIG (default: bundled SciFact sample); key=value overrides; NPROC=2
	$(EMBED_RUN) -m embedding_ft.cli.train --config $(EMBED_CONFIG) $(OVERRIDES)
	@cd $(EMBED_DIR)/outputs && latest=$$(ls -td -- */ 2>/dev/null | grep -v '^latest/$$' | head -1) && \
		[ -n "$$latest" ] && ln -sfn "$${latest%/}" latest || true

train-embed-tb: setup setup-embed-dirs ## Train with TensorBoard logging, served on 127.0.0.1:TB_PORT (6006)
	@$(VENV)/bin/tensorboard --logdir $(EMBED_TB_LOGDIR) --host 127.0.0.1 --port $(EMBED_TB_PORT) >/dev/null 2>&1 & \
	tb=$$!; trap "kill $$tb 2>/dev/null" EXIT INT TERM; \
	echo "TensorBoard: http://127.0.0.1:$(EMBED_TB_PORT) (logdir $(EMBED_TB_LOGDIR))"; \
	$(EMBED_RUN) -m embedding_ft.cli.train --config $(EMBED_CONFIG) tensorboard=true $(OVERRIDES) && \
	echo "training done; TensorBoard still serving at http://127.0.0.1:$(EMBED_TB_PORT) - Ctrl-C to stop" && wait $$tb

infer-embed: setup ## Similarities of TEXTS="a|b|c", or embed INPUT (txt/jsonl) to OUTPUT (.npy), with MODEL
	$(PY) -m embedding_ft.cli.infer --model $(EMBED_MODEL) $(BACKEND_ARGS) $(if $(EMBED_TEXTS),--texts "$(EMBED_TEXTS)") \
		$(if $(EMBED_INPUT),--input $(EMBED_INPUT) --output $(EMBED_OUTPUT) --field $(EMBED_FIELD))

eval-embed: setup ## Evaluate MODEL on DATA (BEIR folder or pairs file) next to BM25
	$(PY) -m embedding_ft.cli.evaluate --model $(EMBED_MODEL) --data $(EMBED_DATA) $(BACKEND_ARGS) $(if $(EMBED_TEST_SIZE),--test-size $(EMBED_TEST_SIZE) --seed $(EMBED_SEED))

export-embed: setup ## Export MODEL for fast CPU inference: BACKEND=onnx|openvino QUANT=none|int8 [EXPORT_OUTPUT=copy]
	$(PY) -m embedding_ft.cli.export --model $(EMBED_MODEL) --backend $(if $(filter torch,$(EMBED_BACKEND)),onnx,$(EMBED_BACKEND)) --quant $(EMBED_QUANT) \
		$(if $(EMBED_EXPORT_OUTPUT),--output $(EMBED_EXPORT_OUTPUT))

index-embed: setup ## Index DOCS (BEIR / JSONL / CSV / .txt) with MODEL [BACKEND=torch|onnx|openvino|auto] into INDEX [NPROC=, NNODES=: each process encodes a slice] (FAISS + BM25 + documents); [FAISS=auto|flat|hnsw|ivf (auto: flat below 100k docs, else hnsw)] [VECTORS=float32|float16|int8] [FROM_INDEX=base index: an adapter MODEL reuses its vectors] [GATE=exact|approximate: BACKEND=auto's parity gate] [COMPUTE_DTYPE=float32|bfloat16]
	$(EMBED_RUN) -m embedding_ft.cli.index --model $(EMBED_MODEL) $(BACKEND_ARGS) $(if $(EMBED_FROM_INDEX),--from-index $(EMBED_FROM_INDEX),--docs $(EMBED_DOCS)) --index $(EMBED_INDEX) \
		$(if $(or $(EMBED_FAISS),$(call guide_name,FAISS)),--faiss $(or $(EMBED_FAISS),$(call guide_name,FAISS))) $(if $(or $(EMBED_VECTORS),$(call guide_name,VECTORS)),--vectors $(or $(EMBED_VECTORS),$(call guide_name,VECTORS))) \
		$(if $(call guide_name,GATE),--gate $(call guide_name,GATE)) $(if $(call guide_name,COMPUTE_DTYPE),--compute-dtype $(call guide_name,COMPUTE_DTYPE))

search-embed: setup ## Search INDEX for QUERY="..." [TOPK=10] [HYBRID=1: fused as the index's fusion.json says; WEIGHT=w: convex, dense weight w; CANDIDATES=N: fuse each ranker's top N, 0: every document] (JSON=1: JSON lines)
	$(PY) -m embedding_ft.cli.search --index $(EMBED_INDEX) --query "$(EMBED_QUERY)" --top-k $(EMBED_TOPK) $(if $(EMBED_HYBRID),--hybrid) $(if $(EMBED_WEIGHT),--weight $(EMBED_WEIGHT)) $(if $(EMBED_JSON),--json) \
		$(if $(or $(EMBED_CANDIDATES),$(call guide_name,CANDIDATES)),--candidates $(or $(EMBED_CANDIDATES),$(call guide_name,CANDIDATES)))

bench-export: setup ## Benchmark back ends (fp32, ONNX, int8) and search latency; writes embeddingFT/bench/results/export/
	$(PY) $(EMBED_DIR)/bench/bench_export.py $(EMBED_BENCH_EXPORT_ARGS)

bench-recipes: setup ## Benchmark training recipes on SciFact (dev / rest, guard rails); writes bench/results/recipes/
	$(PY) $(EMBED_DIR)/bench/bench_recipes.py $(EMBED_BENCH_RECIPES_ARGS)

bench-embed: setup ## Benchmark: train-embed vs a plain SentenceTransformerTrainer script, mining, encoding; SciFact quality
	$(PY) $(EMBED_DIR)/bench/bench_embed.py $(EMBED_BENCH_EMBED_ARGS) $(OVERRIDES)

# Serving (embedding_ft.serve): OpenAI-compatible embeddings, search and a search page for INDEX.
# MODEL / BACKEND are passed only when given (the index's own otherwise). HOST is taken from the
# command line only (shells set HOST to the machine's name); API_KEY reaches the server through
# the environment (EMBED_SERVE_API_KEY), never its command line, which `ps` shows.
EMBED_SERVE_MODEL ?= $(or $(call guide_name,EMBED_MODEL),$(call guide_name,MODEL))
EMBED_SERVE_BACKEND ?= $(or $(call guide_name,EMBED_BACKEND),$(call guide_name,BACKEND))
EMBED_HOST ?= $(if $(filter command line,$(origin HOST)),$(HOST),127.0.0.1)
EMBED_PORT ?= $(or $(call guide_name,PORT),8080)
EMBED_API_KEY ?= $(call guide_name,API_KEY)
EMBED_SERVE_WORKERS ?= $(call guide_name,WORKERS)
EMBED_BENCH_SERVE_ARGS ?= $(call guide_name,BENCH_SERVE_ARGS)

.PHONY: serve-embed bench-serve
serve-embed: setup ## Serve INDEX over HTTP on HOST:PORT (127.0.0.1:8080): OpenAI /v1/embeddings, /search, page at /; [MODEL=] [BACKEND=] [WORKERS=] [API_KEY=: needed for HOST other than loopback]; SIGHUP reloads
	$(PY) -m embedding_ft.cli.serve --index $(EMBED_INDEX) $(if $(EMBED_SERVE_MODEL),--model $(EMBED_SERVE_MODEL)) \
		$(if $(EMBED_SERVE_BACKEND),--backend $(EMBED_SERVE_BACKEND)) --host $(EMBED_HOST) --port $(EMBED_PORT) \
		$(if $(EMBED_SERVE_WORKERS),--workers $(EMBED_SERVE_WORKERS))
serve-embed: export EMBED_SERVE_API_KEY := $(or $(EMBED_API_KEY),$(EMBED_SERVE_API_KEY))

bench-serve: setup ## Benchmark the server vs a naive endpoint and infinity-emb, /search, 10-min soak; writes bench/results/serve/ (BENCH_SERVE_ARGS=)
	$(PY) $(EMBED_DIR)/bench/bench_serve.py $(EMBED_BENCH_SERVE_ARGS)

.PHONY: bench-scale
EMBED_BENCH_SCALE_ARGS ?= $(call guide_name,BENCH_SCALE_ARGS)
bench-scale: setup ## Benchmark at scale: back ends, the recipe's wall time, index-embed 10k-200k, kill -9, NPROC=2, search at 1M, distractors; writes bench/results/scale/ (BENCH_SCALE_ARGS=)
	$(PY) $(EMBED_DIR)/bench/bench_scale.py $(EMBED_BENCH_SCALE_ARGS)
