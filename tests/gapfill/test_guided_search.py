import copy

import numpy as np
import pytest
import torch

from gapfill import vec2text as v2t
from gapfill.config import GuidedSearchConfig, Vec2TextConfig
from gapfill.guided_search import LMProposer, guided_search, refine

WORDS = ["<end>", "the", "dog", "sits", "on", "mat", "runs", "a", "park", "red", "stock", "tree"]  # no hash collisions
FLUENT = {"the": ["dog", "mat"], "dog": ["sits"], "sits": ["on"], "on": ["the"], "mat": ["<end>"]}


class BigramProposer:
    """A toy LM over whole words: after word w, the words in FLUENT[w] share most of the mass."""

    eos_id = 0

    def __init__(self):
        self.beams: list[list[int]] = []

    def decode(self, ids):
        return " ".join(WORDS[i] for i in ids)

    def banned(self):
        return []

    def _logp(self, last: int | None) -> torch.Tensor:
        p = torch.full((len(WORDS),), 0.02)
        favoured = ["the"] if last is None else FLUENT.get(WORDS[last], [])
        for w in favoured:
            p[WORDS.index(w)] = 1.0
        return torch.log(p / p.sum())

    def start(self):
        self.beams = [[]]
        return self._logp(None)[None]

    def advance(self, parents, tokens):
        self.beams = [[*self.beams[p], t] for p, t in zip(parents, tokens)]
        return torch.stack([self._logp(b[-1]) for b in self.beams])


def test_search_finds_a_known_target_text(embed_fn):
    target = embed_fn(["the dog sits on the mat"])[0]
    cfg = GuidedSearchConfig(beam_width=4, top_k=len(WORDS), max_new_tokens=8, fluency_weight=0.0)
    best, ranked = guided_search(BigramProposer(), target, embed_fn, cfg)
    assert best.cosine == pytest.approx(1.0, abs=1e-5)
    # a bag-of-words embedder cannot see the order: any arrangement of the six words is as close
    assert sorted(best.text.split()) == sorted(["the", "dog", "sits", "on", "the", "mat"])
    assert ranked[0] is best and all(r.score <= best.score for r in ranked)
    assert best.cosine == pytest.approx(float(embed_fn([best.text])[0] @ target), abs=1e-5)


def test_fluency_weight_picks_the_fluent_order(embed_fn):
    target = embed_fn(["the dog sits on the mat"])[0]
    cfg = GuidedSearchConfig(beam_width=6, top_k=len(WORDS), max_new_tokens=8, fluency_weight=0.1)
    best, _ = guided_search(BigramProposer(), target, embed_fn, cfg)
    assert best.text == "the dog sits on the mat"
    # its score is the cosine plus the weighted mean log-prob of its six words and the end
    logps = []
    proposer = BigramProposer()
    lp = proposer.start()
    ids = [WORDS.index(w) for w in best.text.split()]
    for tok in ids:
        logps.append(float(lp[0, tok]))
        lp = proposer.advance([0], [tok])
    logps.append(float(lp[0, 0]))
    assert best.logprob == pytest.approx(np.mean(logps), abs=1e-5)
    assert best.score == pytest.approx(best.cosine + 0.1 * np.mean(logps), abs=1e-5)


def test_lm_proposer_cache_matches_a_full_forward(tiny_lm_session):
    lm, tok = tiny_lm_session
    torch.manual_seed(0)
    context = torch.randn(3, lm.config.hidden_size)  # (ctx, lm_dim)
    prop = LMProposer(lm, tok, context, eos_id=tok.sep_token_id)
    first = prop.start()  # (1, vocab)
    second = prop.advance([0, 0], [1000, 2000])  # two beams from the single start
    third = prop.advance([1, 1, 0], [3000, 4000, 5000])  # reordered and grown
    emb = lm.get_input_embeddings()

    def full(ids):
        x = torch.cat([context, emb(torch.tensor(ids, dtype=torch.long))]) if ids else context
        with torch.no_grad():
            return torch.log_softmax(lm(inputs_embeds=x[None]).logits[0, -1], -1)

    torch.testing.assert_close(first[0], full([]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(second[1], full([2000]), atol=1e-4, rtol=1e-4)
    for row, ids in zip(third, ([2000, 3000], [2000, 4000], [1000, 5000])):
        torch.testing.assert_close(row, full(ids), atol=1e-4, rtol=1e-4)


def test_no_repeated_trigrams_and_no_banned_tokens(tiny_lm_session, embed_fn):
    lm, tok = tiny_lm_session
    prop = LMProposer(lm, tok, None, eos_id=tok.sep_token_id)
    cfg = GuidedSearchConfig(beam_width=3, top_k=4, max_new_tokens=10, fluency_weight=0.05)
    best, ranked = guided_search(prop, embed_fn(["a man is playing a guitar"])[0], embed_fn, cfg)
    assert ranked and best.text
    for cand in ranked[:5]:
        ids = tok(cand.text, add_special_tokens=False)["input_ids"]
        grams = [tuple(ids[i : i + 3]) for i in range(len(ids) - 2)]
        assert len(grams) == len(set(grams))
        assert "[CLS]" not in cand.text and "[MASK]" not in cand.text


def test_guided_correction_step_never_lowers_the_cosine(tiny_lm_session, embed_fn):
    lm, tok = tiny_lm_session
    torch.manual_seed(0)
    cfg = Vec2TextConfig(projector_hidden=32, num_prefix=2, max_new_tokens=6)
    model = v2t.Vec2Text.build(copy.deepcopy(lm), tok, 32, cfg)
    search = GuidedSearchConfig(beam_width=2, top_k=4, max_new_tokens=6, fluency_weight=0.05)
    texts = ["the dog sits on the mat", "two dogs run in a field", "stock prices fell today"]
    for i, text in enumerate(texts):
        target = embed_fn([text])[0]
        start_text = texts[(i + 1) % len(texts)]
        start_emb = embed_fn([start_text])[0]
        start = v2t.Step(start_text, float(start_emb @ target))
        step, emb = v2t.correction_step(model, target, embed_fn, start, start_emb, 2, v2t.Correctors(search))
        assert step.cosine >= start.cosine
        assert step.cosine == pytest.approx(float(embed_fn([step.text])[0] @ target), abs=1e-5)
        np.testing.assert_allclose(emb, embed_fn([step.text])[0], atol=1e-6)
        assert step.source in {"beam", "search", "refine", "previous"}
        assert 3 <= len(step.candidates) <= 4  # two beams, the search's text and maybe an edit of the start


def test_invert_with_search_is_monotone_and_search_only_works(tiny_lm_session, embed_fn):
    lm, tok = tiny_lm_session
    torch.manual_seed(0)
    model = v2t.Vec2Text.build(
        copy.deepcopy(lm), tok, 32, Vec2TextConfig(projector_hidden=32, num_prefix=2, max_new_tokens=6)
    )
    search = GuidedSearchConfig(beam_width=2, top_k=4, max_new_tokens=6)
    steps = v2t.invert(model, embed_fn(["a red dog runs"])[0], embed_fn, 2, 0, v2t.Correctors(search))
    assert len(steps) == 3 and all(s.source in {"search", "refine", "previous"} for s in steps)
    cos = [s.cosine for s in steps]
    assert cos == sorted(cos)


def test_refine_deletes_the_word_that_pulls_away(tiny_lm_session, embed_fn):
    lm, tok = tiny_lm_session
    prop = LMProposer(lm, tok, None, eos_id=tok.sep_token_id)
    target = embed_fn(["the dog sits on the mat"])[0]
    start = "the dog sits on the stock mat"
    cfg = GuidedSearchConfig(refine_rounds=2, refine_top_k=2, refine_rescored=200, fluency_weight=0.0)
    out = refine(prop, start, target, embed_fn, cfg)
    assert out.text == "the dog sits on the mat"
    assert out.cosine == pytest.approx(1.0, abs=1e-5)
    # with a fluency weight the result never scores below the starting text
    cfg.fluency_weight = 0.5
    means, _ = prop.sequence_logprobs([tok(start, add_special_tokens=False)["input_ids"]])
    start_score = float(embed_fn([start])[0] @ target) + 0.5 * means[0]
    assert refine(prop, start, target, embed_fn, cfg).score >= start_score - 1e-6


def test_sequence_logprobs_match_a_manual_forward(tiny_lm_session):
    lm, tok = tiny_lm_session
    torch.manual_seed(1)
    context = torch.randn(2, lm.config.hidden_size)
    prop = LMProposer(lm, tok, context, eos_id=tok.sep_token_id)
    seqs = [[1000, 2000, 3000], [4000]]
    means, first = prop.sequence_logprobs(seqs)
    emb = lm.get_input_embeddings()
    for seq, mean in zip(seqs, means):
        toks = [*seq, tok.sep_token_id]
        x = torch.cat([context, emb(torch.tensor(toks))])[None]
        with torch.no_grad():
            logp = torch.log_softmax(lm(inputs_embeds=x).logits[0], -1)
        expected = np.mean([float(logp[len(context) - 1 + j, t]) for j, t in enumerate(toks)])
        assert mean == pytest.approx(expected, abs=1e-4)
    assert first.shape == (len(seqs[0]) + 1, lm.config.vocab_size)
