import copy
import math

import numpy as np
import pytest
import torch

from gapfill import vec2text as v2t
from gapfill.config import GuidedSearchConfig, Vec2TextConfig
from gapfill.rewrite import Rewriter, choose
from gapfill.vec2text import inversion

SMALL = {"projector_hidden": 64, "num_prefix": 2, "max_new_tokens": 6, "batch_size": 4, "warmup_steps": 1}
SEARCH = GuidedSearchConfig(beam_width=2, top_k=3, max_new_tokens=4, refine_rounds=0, word_rounds=0)


def test_choose_without_fluency_takes_the_closest():
    assert choose([0.2, 0.9, 0.5], floor=-math.inf, margin=0.05) == 1
    assert choose([0.2, 0.9, 0.5], floor=-math.inf, margin=0.05, fluency=None) == 1


def test_choose_prefers_the_most_fluent_within_the_margin():
    cos = [0.90, 0.93, 0.915, 0.60]
    flu = {0: -2.0, 1: -6.0, 2: -3.0, 3: -1.0}
    calls = []

    def fluency(idx):
        calls.append(list(idx))
        return [flu[i] for i in idx]

    # 0.90 is 0.03 below the closest: outside a 0.02 margin; 0.915 is inside and more fluent than 0.93
    assert choose(cos, floor=-math.inf, margin=0.02, fluency=fluency) == 2
    assert calls == [[1, 2]]  # only the eligible texts are scored
    assert choose(cos, floor=-math.inf, margin=0.05, fluency=fluency) == 0
    assert choose(cos, floor=-math.inf, margin=0.0, fluency=fluency) == 1


def test_choose_never_goes_below_the_floor():
    rng = np.random.default_rng(0)
    for _ in range(200):
        cos = rng.uniform(-1, 1, size=6)
        floor = float(rng.uniform(-1, 1))
        i = choose(cos, floor, margin=0.3, fluency=lambda idx: list(rng.normal(size=len(idx))))
        if cos.max() <= floor:
            assert i is None
        else:
            assert cos[i] > floor and cos[i] >= cos.max() - 0.3


def test_rewriter_scores_fluency_and_rewrites_towards_the_target(tiny_lm_session, embed_fn):
    lm, tok = tiny_lm_session
    rewriter = Rewriter(lm, tok)
    texts = ["a man plays a guitar", "guitar a plays man a"]
    flu = rewriter.fluency(texts)
    assert len(flu) == 2 and all(math.isfinite(f) and f < 0 for f in flu)
    assert rewriter.fluency([]) == []
    # no chat template: a plain prompt holding the text, ending at a line break
    proposer = rewriter.proposer("guitar a plays man a")
    assert "guitar a plays man a" in tok.decode(proposer.context)
    target = embed_fn(["a man plays a guitar"])[0]
    cand = rewriter.rewrite("guitar a plays man a", target, embed_fn, SEARCH)
    assert cand.cosine == pytest.approx(float(embed_fn([cand.text])[0] @ target), abs=1e-5)


def test_correction_with_rewrites_never_returns_a_worse_cosine(tiny_lm_session, embed_fn):
    lm, tok = tiny_lm_session
    torch.manual_seed(0)
    model = v2t.Vec2Text.build(copy.deepcopy(lm), tok, 32, Vec2TextConfig(**SMALL))
    rewriter = Rewriter(lm, tok)
    search = GuidedSearchConfig(**{**SEARCH.__dict__, "fluent_margin": 0.5})
    correctors = v2t.Correctors(search, rewriter=rewriter)
    for text, start_text in [("the cat sits on the mat", "mat the cat"), ("two dogs run in a field", "dogs field")]:
        target = embed_fn([text])[0]
        start_emb = embed_fn([start_text])[0]
        start = v2t.Step(start_text, float(start_emb @ target))
        step, emb = v2t.correction_step(model, target, embed_fn, start, start_emb, 2, correctors)
        assert step.cosine >= start.cosine
        assert "rewrite" in step.sources
        np.testing.assert_allclose(emb, embed_fn([step.text])[0], atol=1e-6)
    steps = v2t.invert(model, embed_fn(["a woman slices an onion"])[0], embed_fn, 2, 2, correctors)
    cos = [s.cosine for s in steps]
    assert cos == sorted(cos)


def test_a_step_keeps_the_fluent_proposal_within_the_margin(tiny_lm_session, embed_fn, monkeypatch):
    lm, tok = tiny_lm_session
    torch.manual_seed(0)
    model = v2t.Vec2Text.build(copy.deepcopy(lm), tok, 32, Vec2TextConfig(**SMALL))
    rewriter = Rewriter(lm, tok)
    target = embed_fn(["the cat sits on the mat"])[0]
    closest, fluent = "the cat sits on the mat", "the cat sits on a mat"
    monkeypatch.setattr(inversion, "_propose", lambda *a, **k: ([(closest, "words"), (fluent, "rewrite")], 0.0))
    monkeypatch.setattr(rewriter, "fluency", lambda texts: [{closest: -9.0, fluent: -1.0}[t] for t in texts])
    cos_fluent = float(embed_fn([fluent])[0] @ target)
    start_emb = embed_fn(["a dog"])[0]
    start = v2t.Step("a dog", float(start_emb @ target))
    assert start.cosine < cos_fluent < 1.0
    wide = GuidedSearchConfig(fluent_margin=1.0)
    step, _ = v2t.correction_step(model, target, embed_fn, start, start_emb, 0, v2t.Correctors(wide, rewriter=rewriter))
    assert step.text == fluent and step.source == "rewrite" and step.cosine == pytest.approx(cos_fluent)
    # a margin smaller than the gap, no margin, or no rewriter: the closest proposal wins
    narrow = GuidedSearchConfig(fluent_margin=(1.0 - cos_fluent) / 2)
    for search, rw in [(narrow, rewriter), (GuidedSearchConfig(fluent_margin=0.0), rewriter), (wide, None)]:
        step, _ = v2t.correction_step(model, target, embed_fn, start, start_emb, 0, v2t.Correctors(search, rewriter=rw))
        assert step.text == closest
