# qa_pipeline: scientific PDFs -> paper JSON -> Q&A pairs -> a fine-tuned model (trains through embeddingFT).
# Commands run inside qa_pipeline/ (as its guide does); paths given here are relative to the repo root.
#   make qa-all PDF_DIR=../shared/data/papers GENERATOR=fallback
#   make qa-generate GENERATOR=openai MODEL_NAME=qwen2.5 BASE_URL=http://localhost:8000/v1 questions_per_passage=3
# Lower-case key=value pairs are forwarded to the one stage a target runs (qa-extract, qa-generate,
# qa-train, bench-qa); qa-all takes QA_EXTRACT_ARGS / QA_GENERATE_ARGS / QA_TRAIN_ARGS instead.
#
# Make variables are QA_-prefixed (other mk files have their own MODEL, DATA, SEED, ...). The unprefixed
# names the qa guide and README document still work when given on the command line or in the environment:
#   PDF_DIR EXTRACTOR GROBID_URL GENERATOR MODEL_NAME BASE_URL BASE_MODEL EPOCHS BATCH_SIZE
# stand for QA_PDF_DIR QA_EXTRACTOR ... QA_BATCH_SIZE (a QA_ name wins); a default that another mk file
# gives one of those names is ignored.

QA_DIR := qa_pipeline
QA_PY := $(abspath $(PY))
QA_PDF_DIR ?= $(or $(call guide_name,PDF_DIR),$(QA_DIR)/pdfs)
QA_EXTRACTOR ?= $(or $(call guide_name,EXTRACTOR),auto)
QA_GROBID_URL ?= $(or $(call guide_name,GROBID_URL),http://localhost:8070)
QA_GENERATOR ?= $(or $(call guide_name,GENERATOR),smollm2)
QA_MODEL_NAME ?= $(call guide_name,MODEL_NAME)
QA_BASE_URL ?= $(call guide_name,BASE_URL)
QA_BASE_MODEL ?= $(call guide_name,BASE_MODEL)
QA_EPOCHS ?= $(call guide_name,EPOCHS)
QA_BATCH_SIZE ?= $(call guide_name,BATCH_SIZE)
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
	--input_dir $(abspath $(QA_PDF_DIR)) --output_dir $(abspath $(QA_EXTRACTED)) --extractor $(QA_EXTRACTOR) \
	--grobid_url $(QA_GROBID_URL)
qa_generate_cmd = cd $(QA_DIR) && $(QA_PY) -m qa_pipeline.generate --config $(abspath $(QA_GEN_CONFIG)) \
	--input_dir $(abspath $(QA_EXTRACTED)) --output_dir $(abspath $(QA_OUTPUT)) --generator $(QA_GENERATOR) \
	$(if $(QA_MODEL_NAME),--model $(QA_MODEL_NAME)) $(if $(QA_BASE_URL),--base_url $(QA_BASE_URL))
qa_train_cmd = cd $(QA_DIR) && $(QA_PY) -m qa_pipeline.finetune --config $(abspath $(QA_TRAIN_CONFIG)) \
	--input_jsonl $(abspath $(QA_OUTPUT))/questions_answers.jsonl --output_dir $(abspath $(QA_MODEL_DIR)) \
	$(if $(QA_BASE_MODEL),--base_model $(QA_BASE_MODEL)) $(if $(QA_EPOCHS),--epochs $(QA_EPOCHS)) \
	$(if $(QA_BATCH_SIZE),--batch_size $(QA_BATCH_SIZE))

.PHONY: qa-extract qa-generate qa-train qa-all bench-qa
qa-extract: setup ## PDFs in QA_PDF_DIR (PDF_DIR) -> one paper JSON each (QA_EXTRACTOR=auto|grobid|local, QA_GROBID_URL)
	$(qa_extract_cmd) $(OVERRIDES)

qa-generate: setup ## Extracted papers -> questions_answers.jsonl (QA_GENERATOR / GENERATOR=smollm2|openai|fallback)
	$(qa_generate_cmd) $(OVERRIDES)

qa-train: setup ## Fine-tune QA_BASE_MODEL on the Q&A pairs through embeddingFT (QA_EPOCHS, QA_BATCH_SIZE; resumes)
	$(qa_train_cmd) $(OVERRIDES)

qa-all: setup ## QA_PDF_DIR (PDF_DIR) -> extracted JSON -> Q&A pairs -> fine-tuned model in QA_MODEL_DIR
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
