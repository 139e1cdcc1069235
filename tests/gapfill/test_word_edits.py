import copy
import time

import numpy as np
import pytest
import torch

from gapfill import vec2text as v2t
from gapfill.config import GuidedSearchConfig, Vec2TextConfig
from gapfill.guided_search import LMProposer
from gapfill.word_edits import Vocabulary, refine_words, word_edits

COLLECTION = ["the dog sits on the mat", "a red tree in the park", "stock prices fell today", "the Dog runs"]


def test_word_edits_delete_replace_insert_and_keep_punctuation():
    edits = word_edits("A dog runs.", ["cat"])
    # 3 deletions, 3 replacements, 4 insertions
    assert len(edits) == 10
    assert "Dog runs." in edits  # deleting the first word capitalises the next
    assert "A dog." in edits  # deleting the last word keeps the full stop
    assert "A cat runs." in edits and "A dog cat." in edits  # replacing keeps punctuation
    assert "Cat a dog runs." in edits  # inserted first: capitalised, "A" lower-cased
    assert "A dog runs cat." in edits  # inserted last: before the full stop
    assert "A dog runs." not in edits


def test_vocabulary_from_texts_keeps_the_frequent_spelling_and_round_trips(tmp_path, embed_fn):
    vocab = Vocabulary.from_texts(COLLECTION, embed_fn, max_words=5)
    assert vocab.words[0] == "the" and "dog" in vocab.words  # "dog" twice, "Dog" once
    assert len(vocab) == 5 and vocab.embeddings.shape == (5, vocab.dim)
    np.testing.assert_allclose(vocab.embeddings, embed_fn(vocab.words), atol=1e-6)
    loaded = Vocabulary.load(vocab.save(tmp_path / "vocab"))
    assert loaded.words == vocab.words
    np.testing.assert_array_equal(loaded.embeddings, vocab.embeddings)
    # words along a direction: the word itself first, and present words can be excluded
    direction = embed_fn(["dog"])[0]
    assert vocab.suggest(direction, 1) == ["dog"]
    assert "dog" not in vocab.suggest(direction, 3, exclude=["Dog"])


def test_refine_words_brings_in_the_missing_word(embed_fn):
    vocab = Vocabulary.from_texts(COLLECTION, embed_fn)
    target = embed_fn(["the dog sits on the mat"])[0]
    start = "the dog sits on the tree"
    start_cos = float(embed_fn([start])[0] @ target)
    out = refine_words(start, target, embed_fn, vocab, None, rounds=3, top_words=4, fluency_weight=0.0)
    assert out.text == "the dog sits on the mat"
    assert out.cosine == pytest.approx(1.0, abs=1e-5) and out.cosine > start_cos
    # nothing to gain: the text comes back unchanged
    assert refine_words(out.text, target, embed_fn, vocab, None, rounds=3).text == out.text
    # a deadline already passed: no round starts, the start comes back
    late = refine_words(start, target, embed_fn, vocab, None, rounds=3, top_words=4, deadline=time.perf_counter() - 1)
    assert late.text == start and late.cosine == pytest.approx(start_cos, abs=1e-6)


def test_word_screen_embeds_fewer_edits_and_still_brings_in_the_missing_word(embed_fn):
    vocab = Vocabulary.from_texts(COLLECTION, embed_fn)
    target = embed_fn(["the dog sits on the mat"])[0]
    start = "the dog sits on the tree"
    embedded = {}

    def counting(name):
        def embed(texts):
            embedded[name] = embedded.get(name, 0) + len(texts)
            return embed_fn(texts)

        return embed

    kw = dict(rounds=1, top_words=8, fluency_weight=0.0)
    full = refine_words(start, target, counting("full"), vocab, None, **kw)
    screened = refine_words(start, target, counting("screened"), vocab, None, **kw, screen=2)
    assert full.text == screened.text == "the dog sits on the mat"
    # 6 words: 6 deletions; per word 6 replacements + 7 insertions. Full: 8 words; screened: 8 probes
    # (one insertion each, reused by the edits) and the edits of 2 words; plus the start, embedded twice.
    assert embedded["full"] == 2 + 6 + 8 * 13
    assert embedded["screened"] == 2 + 8 + 6 + 2 * 12


def test_refine_words_never_scores_below_its_start_with_an_lm(tiny_lm_session, embed_fn):
    lm, tok = tiny_lm_session
    scorer = LMProposer(lm, tok, None, eos_id=tok.sep_token_id)
    vocab = Vocabulary.from_texts(COLLECTION, embed_fn)
    for text, start in [("a red tree in the park", "a red dog"), ("stock prices fell today", "the mat")]:
        target = embed_fn([text])[0]
        start_score = (
            float(embed_fn([start])[0] @ target) + 0.5 * scorer.sequence_logprobs([scorer.encode(start)])[0][0]
        )
        out = refine_words(start, target, embed_fn, vocab, scorer, rounds=2, top_words=6, fluency_weight=0.5)
        assert out.score >= start_score - 1e-6
        assert out.cosine == pytest.approx(float(embed_fn([out.text])[0] @ target), abs=1e-5)


def test_invert_uses_word_edits_only_with_a_vocabulary(tiny_lm_session, embed_fn):
    lm, tok = tiny_lm_session
    torch.manual_seed(0)
    model = v2t.Vec2Text.build(
        copy.deepcopy(lm), tok, 32, Vec2TextConfig(projector_hidden=32, num_prefix=2, max_new_tokens=6)
    )
    search = GuidedSearchConfig(beam_width=2, top_k=4, max_new_tokens=6, refine_rounds=0, word_rounds=3)
    target = embed_fn(["stock prices fell today"])[0]
    vocab = Vocabulary.from_texts(COLLECTION, embed_fn)
    with_words = v2t.invert(model, target, embed_fn, 1, 0, v2t.Correctors(search, vocab))
    without = v2t.invert(model, target, embed_fn, 1, 0, v2t.Correctors(search))
    assert all("words" not in s.sources for s in without)
    assert any("words" in s.sources for s in with_words)
    assert with_words[-1].cosine >= without[-1].cosine
    assert [s.cosine for s in with_words] == sorted(s.cosine for s in with_words)
