import math
import random

import numpy as np
import pytest
import torch

from embshared.errors import UserError
from gapfill import vec2text as v2t
from gapfill.config import Vec2TextConfig

TEXTS = [
    "a man is playing a guitar",
    "the cat sits on the mat",
    "two dogs run in a field",
    "a woman slices an onion",
    "children play football in the park",
    "the stock market fell sharply today",
]
SMALL = {"projector_hidden": 64, "num_prefix": 2, "max_new_tokens": 8, "batch_size": 4, "warmup_steps": 1}


@pytest.fixture
def model(tiny_lm_session):
    import copy

    lm, tok = tiny_lm_session
    torch.manual_seed(0)
    return v2t.Vec2Text.build(copy.deepcopy(lm), tok, 32, Vec2TextConfig(**SMALL))


def test_prefix_shape_and_forms_differ(model, embed_fn):
    t = torch.from_numpy(embed_fn(TEXTS[:3]))
    zero_step = model.prefix(t)
    assert zero_step.shape == (3, 2, 32)  # (batch, num_prefix, lm_dim)
    corrected = model.prefix(t, torch.from_numpy(embed_fn(TEXTS[3:6])))
    assert not torch.allclose(zero_step, corrected)


def test_training_lowers_the_loss_on_the_training_pairs(model, embed_fn):
    emb = embed_fn(TEXTS)
    model.config.epochs = 15
    model.config.learning_rate = model.config.lm_learning_rate = 3e-3
    examples = v2t.make_examples(model, TEXTS, emb, embed_fn, correction_fraction=0.5, seed=0, neighbours=2)
    assert len(examples) > len(TEXTS)  # zero-step forms plus some correction forms
    assert any("hyp_ids" in ex for ex in examples)
    before = v2t.evaluate_loss(model, examples)
    v2t.train(model, examples)
    after = v2t.evaluate_loss(model, examples)
    assert after < before - 1.0


def test_trainable_choice_freezes_the_lm(model):
    model.config.trainable = "projector"
    assert v2t.trainable_lm_parameters(model) == []
    model.config.trainable = "projector+norms"
    names = [n for n, _ in v2t.trainable_lm_parameters(model)]
    assert names and all("norm" in n for n in names)


def test_correction_step_never_returns_a_worse_cosine(model, embed_fn):
    rng = random.Random(0)
    for i in range(4):
        target = embed_fn([TEXTS[i]])[0]
        start_text = " ".join(rng.sample(TEXTS[(i + 1) % len(TEXTS)].split(), 3))
        start_emb = embed_fn([start_text])[0]
        start = v2t.Step(start_text, float(start_emb @ target))
        step, emb = v2t.correction_step(model, target, embed_fn, start, start_emb, beam_width=3)
        assert step.cosine >= start.cosine
        assert step.cosine == pytest.approx(float(embed_fn([step.text])[0] @ target), abs=1e-5)
        np.testing.assert_allclose(emb, embed_fn([step.text])[0], atol=1e-6)


def test_correction_step_keeps_the_best_candidate(model, embed_fn, monkeypatch):
    target = embed_fn(["the cat sits on the mat"])[0]
    start_text = "a dog barks"
    start_emb = embed_fn([start_text])[0]
    start = v2t.Step(start_text, float(start_emb @ target))
    monkeypatch.setattr(model, "generate", lambda *a, **k: ["stock prices", "the cat sits on the mat", "a cat"])
    step, _ = v2t.correction_step(model, target, embed_fn, start, start_emb, beam_width=3)
    assert step.text == "the cat sits on the mat" and step.cosine == pytest.approx(1.0)
    monkeypatch.setattr(model, "generate", lambda *a, **k: ["stock prices fell"])
    worse, _ = v2t.correction_step(model, target, embed_fn, step, embed_fn([step.text])[0], beam_width=1)
    assert worse.text == step.text and worse.cosine == step.cosine


def test_invert_reports_monotone_cosines_per_step(model, embed_fn):
    steps = v2t.invert(model, embed_fn([TEXTS[0]])[0], embed_fn, num_steps=2, beam_width=2)
    assert len(steps) == 3
    cos = [s.cosine for s in steps]
    assert cos == sorted(cos)
    texts = v2t.invert_embeddings(embed_fn(TEXTS[:2]), model, embed_fn, num_steps=1, beam_width=2)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    with pytest.raises(UserError, match="shape"):
        v2t.invert_embeddings(np.zeros((2, 5)), model, embed_fn)


def test_perplexity_of_a_uniform_lm_is_the_vocabulary_size(tiny_lm_session):
    import copy

    lm, tok = tiny_lm_session
    lm = copy.deepcopy(lm)
    with torch.no_grad():
        lm.get_output_embeddings().weight.zero_()
    assert v2t.perplexity(lm, tok, TEXTS[:3]) == pytest.approx(lm.config.vocab_size, rel=1e-4)


def test_noised_copy_changes_the_text_but_keeps_its_words():
    rng = random.Random(1)
    text = "a large group of people are walking along the beach at sunset"
    out = v2t.noised(text, rng)
    assert out != text
    assert set(out.split()) <= set(text.split())


def test_save_load_round_trip(tmp_path, model, embed_fn):
    model.config.trainable = "projector+norms"
    with torch.no_grad():
        for _, p in v2t.trainable_lm_parameters(model):
            p.add_(0.5)
    v2t.save(model, tmp_path / "v", extra={"note": "test"})
    import copy

    fresh_lm = copy.deepcopy(model.lm)
    with torch.no_grad():
        for name, p in fresh_lm.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
    loaded = v2t.load(tmp_path / "v", fresh_lm, model.tokenizer)
    t = torch.from_numpy(embed_fn(TEXTS[:2]))
    torch.testing.assert_close(loaded.prefix(t), model.prefix(t))
    for (n1, p1), (_, p2) in zip(model.lm.named_parameters(), loaded.lm.named_parameters()):
        torch.testing.assert_close(p1, p2, msg=n1)
    assert loaded.config == model.config
    with pytest.raises(UserError, match="not a saved"):
        v2t.load(tmp_path, fresh_lm, model.tokenizer)


def test_perplexity_is_finite_and_positive(tiny_lm_session):
    lm, tok = tiny_lm_session
    ppl = v2t.perplexity(lm, tok, TEXTS)
    assert math.isfinite(ppl) and ppl > 1


def test_correctors_name_the_search_as_the_model_config_does():
    from gapfill.config import GuidedSearchConfig

    on, off = Vec2TextConfig(use_search=True), Vec2TextConfig(use_search=False)
    own = GuidedSearchConfig(beam_width=2)
    assert v2t.Correctors.of(on).search is on.search and v2t.Correctors.of(off).search is None
    assert v2t.Correctors.of(off, True).search is off.search and v2t.Correctors.of(on, False).search is None
    assert v2t.Correctors.of(off, own, vocabulary=None).search is own
    rewriter = object()
    assert v2t.Correctors(own).fluent_margin == 0.0  # no rewriter: the closest proposal wins
    assert v2t.Correctors(own, rewriter=rewriter).fluent_margin == own.fluent_margin == 0.01
    assert v2t.Correctors(None, rewriter=rewriter).fluent_margin == 0.0


def test_int8_decoding_copy_keeps_the_trained_norms_is_never_saved_and_is_dropped_by_training(
    tmp_path, model, embed_fn
):
    model.config.trainable = "projector+norms"
    with torch.no_grad():
        for _, p in v2t.trainable_lm_parameters(model):
            p.add_(0.5)
    model.eval()
    keys = set(model.state_dict())
    assert model.decoding_lm(False) is model.lm
    fast = model.decoding_lm(True)
    assert fast is not model.lm and model.decoding_lm(True) is fast  # made once
    assert any(type(m).__module__.startswith("torch.ao") for m in fast.modules())
    norms = {n: p for n, p in model.lm.named_parameters() if "norm" in n}
    for name, p in fast.named_parameters():
        if name in norms:
            torch.testing.assert_close(p, norms[name])  # the trained norms, not the base LM's
    assert set(model.state_dict()) == keys  # the copy is not a submodule: save() never sees it
    target = embed_fn(TEXTS[:1])[0]
    assert len(model.generate(target, beam_width=2, int8=True)) == 2
    proposer = model.proposer(target, int8=True)
    assert proposer.lm is fast and proposer.start().shape[0] == 1
    model.train()
    assert model._int8_lm is None  # weights may change: the next inversion makes a fresh copy


def test_time_budget_starts_a_step_when_its_search_fits_and_skips_the_rewrite_that_does_not(
    monkeypatch, model, embed_fn
):
    """A fake clock: the guided search takes 4 s and a rewrite 6 s; budget 29 s, of which 95% (27.55 s)
    is planned into.

    Step 0 ends at 10 s (search + rewrite), step 1 at 20 s; step 2 starts (20 + 4 <= 27.55) but its
    rewrite would end past the plan (24 + 4 > 27.55; not past the budget), so it keeps the search
    only; step 3 does not start (24 + 4 > 27.55).
    """
    from types import SimpleNamespace

    from gapfill.config import GuidedSearchConfig
    from gapfill.guided_search import Candidate
    from gapfill.vec2text import inversion

    now = [0.0]
    monkeypatch.setattr(inversion, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    def fake_search(proposer, target, embed, config):
        now[0] += 4.0
        return Candidate("a red dog", 0.5, -1.0, 0.45), []

    class SlowRewriter:
        def rewrite(self, text, target, embed, config):
            now[0] += 6.0
            return Candidate(text + " runs", 0.6, -1.0, 0.55)

        def fluency(self, texts):
            return [0.0] * len(texts)

    monkeypatch.setattr(inversion, "guided_search", fake_search)
    search = GuidedSearchConfig(refine_rounds=0, lm_int8=False)
    correctors = v2t.Correctors(search, rewriter=SlowRewriter())
    target = embed_fn(["a red dog runs fast"])[0]
    steps = v2t.invert(model, target, embed_fn, 5, 0, correctors, max_seconds=29.0)
    assert [s.seconds for s in steps] == [10.0, 20.0, 24.0]
    assert [s.core_seconds for s in steps] == [4.0, 4.0, 4.0]
    assert "rewrite" in steps[1].sources and steps[2].sources == ["search"]
    unbudgeted = v2t.invert(model, target, embed_fn, 5, 0, correctors)
    assert len(unbudgeted) == 6 and all("rewrite" in s.sources for s in unbudgeted)


def test_polish_spends_the_time_left_on_word_edits_of_the_kept_text(monkeypatch, model, embed_fn):
    """Step 0 keeps "a red dog" plus one word edit (word_rounds=1); the polish adds the other
    missing word, so the last step gets closer and says it came from the polish. With a budget
    whose plan has already passed when the steps end (a fake clock), no polish runs."""
    from types import SimpleNamespace

    from gapfill.config import GuidedSearchConfig
    from gapfill.guided_search import Candidate
    from gapfill.vec2text import inversion
    from gapfill.word_edits import Vocabulary

    def fake_search(proposer, target, embed, config):
        return Candidate("a red dog", 0.5, -1.0, 0.45), []

    monkeypatch.setattr(inversion, "guided_search", fake_search)
    vocabulary = Vocabulary.from_texts(["a red dog runs fast", "the cat sits on the mat"], embed_fn)
    target = embed_fn(["a red dog runs fast"])[0]
    kw = dict(refine_rounds=0, word_rounds=1, word_screen=0, fluency_weight=0.0, lm_int8=False)
    plain = v2t.Correctors(GuidedSearchConfig(polish=False, **kw), vocabulary)
    polished = v2t.Correctors(GuidedSearchConfig(polish=True, **kw), vocabulary)
    before = v2t.invert(model, target, embed_fn, 0, 0, plain)
    after = v2t.invert(model, target, embed_fn, 0, 0, polished)
    assert len(before) == len(after) == 1
    assert before[0].source == "words" and len(before[0].text.split()) == 4
    assert after[0].source == "polish" and after[0].sources[-1] == "polish"
    assert set(after[0].text.split()) == {"a", "red", "dog", "runs", "fast"}
    assert after[0].cosine > before[0].cosine + 0.05
    assert after[0].cosine == pytest.approx(float(embed_fn([after[0].text])[0] @ target), abs=1e-5)

    now = [0.0]

    def slow_search(proposer, target, embed, config):
        now[0] += 30.0  # past the 95% plan of a 30 s budget
        return Candidate("a red dog", 0.5, -1.0, 0.45), []

    monkeypatch.setattr(inversion, "guided_search", slow_search)
    monkeypatch.setattr(inversion, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    late = v2t.invert(model, target, embed_fn, 0, 0, polished, max_seconds=30.0)
    assert late[0].source != "polish" and "polish" not in late[0].sources
