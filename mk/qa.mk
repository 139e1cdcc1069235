# qa_pipeline: scientific PDFs -> paper JSON -> Q&A pairs -> a fine-tuned model (trains through embeddingFT).
# Commands run inside qa_pipeline/ (as its guide does); paths given here are relative to the repo root.
#   make qa-all PDF_DIR=../shared/data/papers GENERATOR=fallback
#   make qa-generate GENERATOR=openai MODEL_NAME=qwen2.5 BASE_URL=http://localhost:8000/v1 questions_per_passage=3
# Lower-case key=value pairs are forwarded to the one stage a target runs (qa-extract, qa-generate,
# qa-train, bench-qa); qa-all takes QA_EXTRACT_ARGS / QA_GENERATE_ARGS / QA_TRAIN_ARGS instead.

QA_DIR := qa_pipeline
QA_PY := $(abspath $(PY))
PDF_DIR ?= $(QA_DIR)/pdfs
EXTRACTOR ?= auto
GROBID_URL ?= http://localhost:8070
GENERATOR ?= smollm2
MODEL_NAME ?=
BASE_URL ?=
BASE_MODEL ?=
EPOCHS ?=
BATCH_SIZE ?=
QA_EXTRACTED ?= $(QA_DIR)/data/extracted
QA_OUTPUT ?= $(QA_DIR)/data/qa_outputs/jsonl
QA_MODEL_DIR ?= $(QA_DIR)/models/fine_tuned_embeddings
QA_EXTRACT_CONFIG ?= $(QA_DIR)/config/qa_extractor.json
QA_GEN_CONFIG ?= $(QA_DIR)/config/qa_generator.json
QA_TRAIN_CONFIG ?= $(QA_DIR)/config/embedding_finetuner.json
QA_EXTRACT_ARGS ?=
QA_GENERATE_ARGS ?=
QA_TRAIN_ARGS ?=

CLEAN_PATHS += $(QA_DIR)/data $(QA_DIR)/models $(QA_DIR)/bench/work

qa_extract_cmd = cd $(QA_DIR) && $(QA_PY) -m qa_pipeline.extract --config $(abspath $(QA_EXTRACT_CONFIG)) \
	--input_dir $(abspath $(PDF_DIR)) --output_dir $(abspath $(QA_EXTRACTED)) --extractor $(EXTRACTOR) \
	--grobid_url $(GROBID_URL)
qa_generate_cmd = cd $(QA_DIR) && $(QA_PY) -m qa_pipeline.generate --config $(abspath $(QA_GEN_CONFIG)) \
	--input_dir $(abspath $(QA_EXTRACTED)) --output_dir $(abspath $(QA_OUTPUT)) --generator $(GENERATOR) \
	$(if $(MODEL_NAME),--model $(MODEL_NAME)) $(if $(BASE_URL),--base_url $(BASE_URL))
qa_train_cmd = cd $(QA_DIR) && $(QA_PY) -m qa_pipeline.finetune --config $(abspath $(QA_TRAIN_CONFIG)) \
	--input_jsonl $(abspath $(QA_OUTPUT))/questions_answers.jsonl --output_dir $(abspath $(QA_MODEL_DIR)) \
	$(if $(BASE_MODEL),--base_model $(BASE_MODEL)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
	$(if $(BATCH_SIZE),--batch_size $(BATCH_SIZE))

.PHONY: qa-extract qa-generate qa-train qa-all bench-qa
qa-extract: setup ## PDFs in PDF_DIR -> one paper JSON each (EXTRACTOR=auto|grobid|local, GROBID_URL)
	$(qa_extract_cmd) $(OVERRIDES)

qa-generate: setup ## Extracted papers -> questions_answers.jsonl (GENERATOR=smollm2|openai|fallback)
	$(qa_generate_cmd) $(OVERRIDES)

qa-train: setup ## Fine-tune BASE_MODEL on the Q&A pairs through embeddingFT (split by paper; resumes)
	$(qa_train_cmd) $(OVERRIDES)

qa-all: setup ## PDF_DIR -> extracted JSON -> Q&A pairs -> fine-tuned model in QA_MODEL_DIR
	$(if $(strip $(OVERRIDES)),$(error qa-all forwards no key=value pairs; use QA_EXTRACT_ARGS="...", QA_GENERATE_ARGS="..." or QA_TRAIN_ARGS="..."))
	$(qa_extract_cmd) $(QA_EXTRACT_ARGS)
	$(qa_generate_cmd) $(QA_GENERATE_ARGS)
	$(qa_train_cmd) $(QA_TRAIN_ARGS)

bench-qa: setup ## Benchmark (tracks=[scifact,cranfield,claims]): SmolLM2 Q&A / claims, fine-tune, NDCG@10 vs base/BM25/inverse cloze
	cd $(QA_DIR) && $(QA_PY) bench/bench_qa.py $(OVERRIDES)

# Optional: llama-cpp-python[server] for the real OpenAI-compatible server test. PyPI ships it as
# source only, so pip compiles llama.cpp here; base.txt constrains the shared packages (fastapi, ...).
.PHONY: setup-llama
setup-llama: setup ## Optional: compile and install llama-cpp-python[server] (real OpenAI-server test)
	CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} $(PY) -m pip install \
		-c requirements/base.txt -r requirements/optional/llama.txt
