# embeddingFT: contrastive fine-tuning with hard-negative mining (the workspace's main job).
# Config keys given on the make line are forwarded as overrides (see OVERRIDES in the Makefile):
#   make train-embed EMBED_CONFIG=embeddingFT/configs/default.yaml batch_size=16 mining.num_negatives=3

EMBED_DIR := embeddingFT
EMBED_CONFIG ?= $(EMBED_DIR)/configs/default.yaml
NPROC ?= 1
NNODES ?= 1
NODE_RANK ?= 0
MASTER_ADDR ?= 127.0.0.1
MASTER_PORT ?= 29500
TB_PORT ?= 6006
TB_LOGDIR ?= $(EMBED_DIR)/outputs
MODEL ?= $(EMBED_DIR)/outputs/latest/final_model
DATA ?= data/samples/scifact
TEXTS ?=
INPUT ?=
OUTPUT ?=
FIELD ?= text
TEST_SIZE ?=
SEED ?= 42
BENCH_EMBED_ARGS ?=               # e.g. --skip-quality --speed-sample 320
BACKEND ?= torch
QUANT ?= int8
FILE_NAME ?=
DOCS ?= data/samples/scifact
INDEX ?= $(EMBED_DIR)/indexes/latest
QUERY ?=
TOPK ?= 10
HYBRID ?=
EXPORT_OUTPUT ?=
BENCH_EXPORT_ARGS ?=
BENCH_RECIPES_ARGS ?=

# One process: plain python. Several: accelerate launch with its multi-process (torch.distributed)
# launcher; the training code picks the backend: gloo on CPU, NCCL on GPUs.
# (accelerate's own --cpu mode needs mpirun for more than one process.)
ifeq ($(NPROC)$(NNODES),11)
EMBED_RUN = $(PY)
else
EMBED_RUN = $(VENV)/bin/accelerate launch --multi_gpu --num_processes $(shell echo $$(($(NPROC) * $(NNODES)))) \
	--num_machines $(NNODES) --machine_rank $(NODE_RANK) --main_process_ip $(MASTER_ADDR) \
	--main_process_port $(MASTER_PORT) --mixed_precision no --dynamo_backend no
endif

CLEAN_PATHS += $(EMBED_DIR)/outputs $(EMBED_DIR)/checkpoints $(EMBED_DIR)/bench/results/*.tmp $(EMBED_DIR)/bench/work

BACKEND_ARGS = --backend $(BACKEND) $(if $(FILE_NAME),--file-name $(FILE_NAME))

.PHONY: setup-embed-dirs train-embed train-embed-tb infer-embed eval-embed bench-embed export-embed index-embed search-embed bench-export bench-recipes
setup-embed-dirs: ## Create embeddingFT/{configs,scripts,data,models,checkpoints,outputs}
	mkdir -p $(addprefix $(EMBED_DIR)/,configs scripts data models checkpoints outputs)

train-embed: setup setup-embed-dirs ## Fine-tune on EMBED_CONFIG (default: bundled SciFact sample); key=value overrides; NPROC=2
	$(EMBED_RUN) -m embedding_ft.cli.train --config $(EMBED_CONFIG) $(OVERRIDES)
	@cd $(EMBED_DIR)/outputs && latest=$$(ls -td -- */ 2>/dev/null | grep -v '^latest/$$' | head -1) && \
		[ -n "$$latest" ] && ln -sfn "$${latest%/}" latest || true

train-embed-tb: setup setup-embed-dirs ## Train with TensorBoard logging, served on 127.0.0.1:$(TB_PORT)
	@$(VENV)/bin/tensorboard --logdir $(TB_LOGDIR) --host 127.0.0.1 --port $(TB_PORT) >/dev/null 2>&1 & \
	tb=$$!; trap "kill $$tb 2>/dev/null" EXIT INT TERM; \
	echo "TensorBoard: http://127.0.0.1:$(TB_PORT) (logdir $(TB_LOGDIR))"; \
	$(EMBED_RUN) -m embedding_ft.cli.train --config $(EMBED_CONFIG) tensorboard=true $(OVERRIDES) && \
	echo "training done; TensorBoard still serving at http://127.0.0.1:$(TB_PORT) - Ctrl-C to stop" && wait $$tb

infer-embed: setup ## Similarities of TEXTS="a|b|c", or embed INPUT (txt/jsonl) to OUTPUT (.npy), with MODEL
	$(PY) -m embedding_ft.cli.infer --model $(MODEL) $(BACKEND_ARGS) $(if $(TEXTS),--texts "$(TEXTS)") \
		$(if $(INPUT),--input $(INPUT) --output $(OUTPUT) --field $(FIELD))

eval-embed: setup ## Evaluate MODEL on DATA (BEIR folder or pairs file) next to BM25
	$(PY) -m embedding_ft.cli.evaluate --model $(MODEL) --data $(DATA) $(BACKEND_ARGS) $(if $(TEST_SIZE),--test-size $(TEST_SIZE) --seed $(SEED))

export-embed: setup ## Export MODEL for fast CPU inference: BACKEND=onnx|openvino QUANT=none|int8 [EXPORT_OUTPUT=copy]
	$(PY) -m embedding_ft.cli.export --model $(MODEL) --backend $(if $(filter torch,$(BACKEND)),onnx,$(BACKEND)) --quant $(QUANT) \
		$(if $(EXPORT_OUTPUT),--output $(EXPORT_OUTPUT))

index-embed: setup ## Index DOCS (BEIR / JSONL / CSV / .txt) with MODEL [BACKEND=] into INDEX (FAISS + BM25 + documents)
	$(PY) -m embedding_ft.cli.index --model $(MODEL) $(BACKEND_ARGS) --docs $(DOCS) --index $(INDEX)

search-embed: setup ## Search INDEX for QUERY="..." [TOPK=10] [HYBRID=1] (add JSON=1 for JSON lines)
	$(PY) -m embedding_ft.cli.search --index $(INDEX) --query "$(QUERY)" --top-k $(TOPK) $(if $(HYBRID),--hybrid) $(if $(JSON),--json)

bench-export: setup ## Benchmark back ends (fp32, ONNX, int8) and search latency; writes embeddingFT/bench/results/export/
	$(PY) $(EMBED_DIR)/bench/bench_export.py $(BENCH_EXPORT_ARGS)

bench-recipes: setup ## Benchmark training recipes on SciFact (dev / rest, guard rails); writes bench/results/recipes/
	$(PY) $(EMBED_DIR)/bench/bench_recipes.py $(BENCH_RECIPES_ARGS)

bench-embed: setup ## Benchmark: train-embed vs a plain SentenceTransformerTrainer script, mining, encoding; SciFact quality
	$(PY) $(EMBED_DIR)/bench/bench_embed.py $(BENCH_EMBED_ARGS) $(OVERRIDES)
