# ragcun: isotropic Gaussian embeddings (LeJEPA SIGReg) and a Euclidean (L2) retriever.
# Upper-case variables choose files and all carry the RAGCUN_ prefix, so they never meet the
# bare MODEL / DATA / SEED / EPOCHS / BATCH_SIZE of the other mk/*.mk files (`make ragcun-eval
# MODEL=x` does not reach ragcun: use RAGCUN_MODEL). The names ragcun/README.md documents are
# RAGCUN_DOCUMENTS, RAGCUN_NUM_PAIRS, RAGCUN_TRAIN_DATA, RAGCUN_MODEL and RAGCUN_TEST_DATA;
# every RAGCUN_* below is public and kept. Lower-case key=value on the make line are
# forwarded to the script as config overrides (one ragcun target per call when you do), e.g.
#   make ragcun-prepare RAGCUN_DOCUMENTS=my_docs.txt num_pairs=5000
#   make ragcun-train epochs=5 lambda_isotropy=0.5 freeze_base=true
#   make ragcun-eval RAGCUN_MODEL=ragcun/outputs/checkpoints/final_model.pt
#   make bench-ragcun RAGCUN_BENCH_ARGS="--epochs 30"

RAGCUN_DIR := ragcun
RAGCUN_OUT ?= $(RAGCUN_DIR)/outputs
RAGCUN_DOCUMENTS ?= data/samples/scifact/corpus.jsonl
RAGCUN_NUM_PAIRS ?= 2000
RAGCUN_SPLIT ?= 0.8 0.1 0.1
RAGCUN_DATA ?= $(RAGCUN_OUT)/data
RAGCUN_TRAIN_CONFIG ?= $(RAGCUN_DIR)/configs/train.yaml
RAGCUN_TRAIN_DATA ?= $(RAGCUN_DATA)/train.json
RAGCUN_VAL_DATA ?= $(RAGCUN_DATA)/val.json
RAGCUN_CHECKPOINTS ?= $(RAGCUN_OUT)/checkpoints
RAGCUN_MODEL ?= $(RAGCUN_CHECKPOINTS)/best_model.pt
RAGCUN_TEST_DATA ?= $(RAGCUN_DATA)/test_eval.json
RAGCUN_EVAL_OUTPUT ?= $(RAGCUN_OUT)/eval_results.json
RAGCUN_BENCH_ARGS ?=

CLEAN_PATHS += $(RAGCUN_OUT) $(RAGCUN_DIR)/bench/results/*/*.tmp

.PHONY: ragcun-prepare ragcun-train ragcun-eval bench-ragcun
ragcun-prepare: setup ## ragcun: inverse-cloze pairs from RAGCUN_DOCUMENTS, split by document into RAGCUN_DATA
	$(PY) $(RAGCUN_DIR)/scripts/prepare_data.py --documents $(RAGCUN_DOCUMENTS) --generate_pairs \
		--num_pairs $(RAGCUN_NUM_PAIRS) --add_negatives --split $(RAGCUN_SPLIT) --output_dir $(RAGCUN_DATA) $(OVERRIDES)

ragcun-train: setup ## ragcun: train the Gaussian model on RAGCUN_TRAIN_DATA (config RAGCUN_TRAIN_CONFIG) into RAGCUN_CHECKPOINTS
	$(PY) $(RAGCUN_DIR)/scripts/train.py --config $(RAGCUN_TRAIN_CONFIG) --train_data $(RAGCUN_TRAIN_DATA) \
		$(if $(wildcard $(RAGCUN_VAL_DATA)),--val_data $(RAGCUN_VAL_DATA)) --output_dir $(RAGCUN_CHECKPOINTS) $(OVERRIDES)

ragcun-eval: setup ## ragcun: Recall/MRR/NDCG/MAP + isotropy of RAGCUN_MODEL on RAGCUN_TEST_DATA (test_eval.json or BEIR folder)
	$(PY) $(RAGCUN_DIR)/scripts/evaluate.py --model_path $(RAGCUN_MODEL) --test_data $(RAGCUN_TEST_DATA) \
		--output_file $(RAGCUN_EVAL_OUTPUT) $(OVERRIDES)

bench-ragcun: setup ## ragcun: SciFact benchmark: BM25 vs MiniLM (cosine) vs Gaussian (L2) + SIGReg ablation
	$(PY) $(RAGCUN_DIR)/bench/bench_scifact.py $(RAGCUN_BENCH_ARGS)
