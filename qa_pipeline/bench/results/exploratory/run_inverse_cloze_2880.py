"""Exploratory peer of the qa bench: its recipe on no-model inverse-cloze pseudo-queries of the
same 2,880 abstracts (without the PDFs' passages), through the bench's own functions.

    cd qa_pipeline && ../.venv/bin/python bench/results/exploratory/run_inverse_cloze_2880.py

Writes bench/work/ict/result.json (copied here as inverse_cloze_2880.json).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bench_qa as b
import torch

from embshared.config import load_config
from embshared.io import load_beir
from embshared.runtime import seed_everything, setup_logging, shared_data_dir
from qa_pipeline.generate import GenerateConfig
from qa_pipeline.generators import FallbackConfig, FallbackGenerator
from qa_pipeline.passages import PassageConfig


def main() -> None:
    setup_logging()
    torch.set_num_threads(2)
    cfg = load_config(b.BenchConfig, None, ["work_dir=bench/work/ict"])
    seed_everything(cfg.seed)
    data = shared_data_dir()
    scifact, pubmedqa = load_beir(data / "scifact"), load_beir(data / "pubmedqa")
    papers = b.scifact_papers(scifact.corpus, cfg.seed)[:2880]
    fb = FallbackGenerator(FallbackConfig(method="inverse_cloze"), n=1, seed=cfg.seed)
    gen = GenerateConfig(
        questions_per_passage=1,
        seed=cfg.seed,
        passages=PassageConfig(max_words=400, min_words=10, max_passages_per_paper=1),
    )
    work = Path(cfg.work_dir)
    stats = b.generate_all(papers, fb, gen, work / "qa_fallback_2880")
    model_dir, info = b.train_on(work / "qa_fallback_2880" / "questions_answers.jsonl", work / "model_ict", cfg)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = cfg.max_seq_length
    out = {
        "stats": stats,
        "training": info,
        "scifact": b.evaluate_model(model, scifact, "ict", None, b.query_split(scifact)),
        "pubmedqa": b.evaluate_model(model, pubmedqa, "ict", None),
    }
    (work / "result.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out["scifact"]), json.dumps(out["pubmedqa"]))


if __name__ == "__main__":
    main()
