"""The landing score (embed -> encoder -> distance in radii, plus fluency) and text for a gap by it."""

import numpy as np
import pytest
import torch

from gapfill.config import GapTextConfig, UMAPConfig
from gapfill.gap_text import LMSampler, clean_answer, opposite_pairs, write_for_point
from gapfill.landing import Circle, LandingScorer, circle_at
from gapfill.parametric_umap import ParametricUMAP
from gapfill.word_edits import Vocabulary

# Four fixed embeddings; the tiny encoder below maps e to (2 * e[0], 2 * e[1]).
EMB = {
    "at the centre": [0.5, 0.0, 0.866, 0.0],  # lands at (1, 0)
    "a little off": [0.6, 0.2, 0.775, 0.0],  # lands at (1.2, 0.4)
    "far away": [0.0, 1.0, 0.0, 0.0],  # lands at (0, 2)
}


def fixed_embed(texts):
    return np.asarray([EMB[t] for t in texts], dtype=np.float32)


@pytest.fixture
def linear_map():
    """A parametric map whose encoder is fixed by hand: (e0, e1, e2, e3) -> (2 e0, 2 e1) for e0, e1 >= 0."""
    model = ParametricUMAP(UMAPConfig(hidden_layers=[4]))
    model._build(4)
    with torch.no_grad():
        first, last = model.encoder[0], model.encoder[2]
        first.weight.copy_(torch.eye(4))
        first.bias.zero_()
        last.weight.copy_(torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0]]))
        last.bias.zero_()
    return model


def test_landing_score_ranks_a_text_at_the_centre_above_one_far_away(linear_map):
    circle = Circle(1.0, 0.0, radius=0.5)
    scorer = LandingScorer(linear_map, fixed_embed, circle, fluency=None, inner=0.0)
    near, off, far = scorer.score(["at the centre", "a little off", "far away"])
    np.testing.assert_allclose(near.landed, [1.0, 0.0], atol=1e-5)
    assert near.radii == pytest.approx(0.0, abs=1e-5)
    assert off.radii == pytest.approx(np.hypot(0.2, 0.4) / 0.5, rel=1e-4)  # inside: < 1
    assert far.radii == pytest.approx(np.hypot(1.0, 2.0) / 0.5, rel=1e-4)  # outside: 4.47 radii
    assert [c.text for c in scorer.ranked()] == ["at the centre", "a little off", "far away"]
    assert near.score == pytest.approx(0.0, abs=1e-5) and far.score == pytest.approx(-far.radii)


def test_scorer_counts_its_texts_and_estimates_a_batch_from_its_seconds_per_text(linear_map):
    scorer = LandingScorer(linear_map, fixed_embed, Circle(1.0, 0.0, 0.5), fluency=lambda t: [-1.0] * len(t))
    scorer.score(["at the centre", "a little off", "far away"], rescore_top=2)
    scorer.score(["at the centre"])  # seen before: not scored again
    assert scorer.counts == {"land": 3, "fluency": 2}
    scorer.seconds = {"land": 0.3, "fluency": 1.0}  # 0.1 s per landed text, 0.5 s per fluency score
    assert scorer.cost(10, 4) == pytest.approx(10 * 0.1 + 4 * 0.5)
    assert LandingScorer(linear_map, fixed_embed, Circle(1.0, 0.0, 0.5)).cost(10, 4) == 0.0  # nothing measured yet


def test_fluency_decides_only_among_texts_that_land_well_inside(linear_map):
    fluency = {"at the centre": -6.0, "a little off": -2.0, "far away": 0.0}
    circle = Circle(1.0, 0.0, radius=0.5)
    scorer = LandingScorer(
        linear_map, fixed_embed, circle, lambda ts: [fluency[t] for t in ts], fluency_weight=0.1, inner=0.9
    )
    scorer.score(list(EMB))
    # both inside texts count as 0.9 radii; the more fluent wins; the far one loses despite fluency 0
    assert [c.text for c in scorer.ranked()] == ["a little off", "at the centre", "far away"]


def test_outside_penalty_puts_any_text_inside_the_circle_before_a_more_fluent_one_outside(linear_map):
    # a circle around "a little off" (lands at (1.2, 0.4)) whose edge "at the centre" (lands at
    # (1, 0), 0.447 away) just misses: 1.016 radii
    circle = Circle(1.2, 0.4, radius=0.44)
    fluency = {"at the centre": -1.0, "a little off": -5.0}
    flu = lambda ts: [fluency[t] for t in ts]  # noqa: E731
    plain = LandingScorer(linear_map, fixed_embed, circle, flu, fluency_weight=0.15)
    plain.score(list(fluency))
    radii = {c.text: c.radii for c in plain.ranked()}
    assert radii["at the centre"] == pytest.approx(np.hypot(0.2, 0.4) / 0.44, rel=1e-4)  # 1.016: outside
    assert plain.ranked()[0].text == "at the centre"  # -1.016 - 0.15 beats -0.5 - 0.75: fluency wins
    strict = LandingScorer(linear_map, fixed_embed, circle, flu, fluency_weight=0.15, outside_penalty=1.0)
    strict.score(list(fluency))
    assert [c.text for c in strict.ranked()] == ["a little off", "at the centre"]
    assert strict.ranked()[1].score == pytest.approx(plain.ranked()[0].score - 1.0)


def test_direction_moves_the_landing_point_towards_the_centre(linear_map):
    circle = Circle(0.0, 2.0, radius=0.5)
    scorer = LandingScorer(linear_map, fixed_embed, circle)
    d = scorer.direction("at the centre")
    e = fixed_embed(["at the centre"])[0]
    assert abs(float(d @ e)) < 1e-4 and np.linalg.norm(d) == pytest.approx(1.0)
    moved = (e + 0.1 * d) / np.linalg.norm(e + 0.1 * d)
    before = np.linalg.norm(linear_map.transform(e[None])[0] - circle.centre)
    after = np.linalg.norm(linear_map.transform(moved[None])[0] - circle.centre)
    assert after < before - 0.05


def test_circle_at_a_point_is_the_empty_circle_there_but_at_least_the_spacing():
    coords = np.array([[0.0, 0.0], [0.1, 0.0], [2.0, 0.0], [2.1, 0.0]])  # spacing 0.1
    assert circle_at((1.0, 0.5), coords).radius == pytest.approx(np.hypot(0.9, 0.5))
    assert circle_at((0.0, 0.0), coords).radius == pytest.approx(0.1)  # on a document: the spacing


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Here is a new sentence: The band played near the kitchen. It was fun.", "The band played near the kitchen."),
        ('"A chef sings while cooking soup."', "A chef sings while cooking soup."),
        ("Sure!\nA runner eats pizza after the race.\nMore text", "A runner eats pizza after the race."),
        ("1. Two dogs play in the snow.", "Two dogs play in the snow."),
        ("Okay.", ""),
        ('The phrase "a man plays" can be rephrased as "a man is playing".', ""),  # talk about the task
        ("A man in a black uniform is leading a", ""),  # cut off
        ("A man plays a flute in a crowd. 2.", "A man plays a flute in a crowd."),  # a list item after it
        ("The index rose 13.33 points to 9,196.55 on Friday.", "The index rose 13.33 points to 9,196.55 on Friday."),
    ],
)
def test_clean_answer_keeps_one_sentence(answer, expected):
    assert clean_answer(answer) == expected


def test_opposite_pairs_pick_points_on_opposite_sides():
    coords = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1], [0.0, -2.0]])
    assert opposite_pairs(np.zeros(2), coords, k=2) == [(1, 3), (0, 2)]


def test_sampler_reads_each_prompt_once_and_answers_as_plain_generate_would(tiny_lm_session):
    """The prompts' cache computed once and repeated n times gives the same tokens as generate() on each
    prompt alone (greedy: top_k=1), for prompts of different lengths (left padding)."""
    lm, tok = tiny_lm_session
    sampler = LMSampler(lm, tok)
    prompts = ["a man plays the guitar", "two trains on a long track near the old station at night"]
    cfg = GapTextConfig(top_k=1, max_new_tokens=24)
    got = sampler.generate(prompts, 3, cfg)
    assert [len(a) for a in got] == [3, 3]
    for prompt, answers in zip(prompts, got):
        ids = torch.tensor([sampler.prompt_ids(prompt)])
        out = lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=24,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
        want = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        assert answers == [want] * 3


def test_write_for_point_returns_the_best_scored_candidate(tiny_lm_session, embed_fn, knn_graph, clusters):
    words = ["guitar piano song band", "onion pizza cheese bread", "football tennis match goal"]
    texts = [f"{words[i % 3]} {w}" for i, w in enumerate("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")]
    x = embed_fn(texts)
    cfg = UMAPConfig(n_neighbors=8, n_epochs=2, hidden_layers=[32, 32], validation_split=0.0, decoder_epochs=2)
    umap = ParametricUMAP(cfg, graph_builder=knn_graph).fit(x)
    coords = umap.transform(x)
    lm, tok = tiny_lm_session
    vocab = Vocabulary.from_texts(texts, embed_fn)
    gap_cfg = GapTextConfig(samples=3, max_new_tokens=8, word_rounds=1, word_top_k=2, inner=0.0)
    out = write_for_point(coords.mean(0), umap, embed_fn, coords, texts, LMSampler(lm, tok), None, vocab, gap_cfg)
    assert out.best is out.candidates[0] and len(out.candidates) <= 5
    assert [c.score for c in out.candidates] == sorted((c.score for c in out.candidates), reverse=True)
    # where the text lands is where the map puts its embedding, in radii of the circle at the point
    landed = umap.transform(embed_fn([out.best.text]), refine=False)[0]  # embed -> encoder
    np.testing.assert_allclose(out.best.landed, landed, atol=1e-5)
    assert out.best.radii == pytest.approx(np.linalg.norm(landed - coords.mean(0)) / out.circle.radius, rel=1e-4)
    assert out.circle.radius == pytest.approx(circle_at(coords.mean(0), coords).radius)
    assert len(out.neighbours) == 6 and out.considered >= len(out.candidates)


def test_int8_sampler_quantizes_a_copy_and_leaves_the_callers_lm_as_it_was(tiny_lm_session):
    lm, tok = tiny_lm_session
    sampler = LMSampler(lm, tok, int8=True)
    kinds = {type(m).__name__ for m in sampler.lm.modules()}
    assert "Linear" in kinds and any(type(m).__module__.startswith("torch.ao") for m in sampler.lm.modules())
    assert all(type(m).__module__.startswith("torch.nn") for m in lm.modules() if type(m).__name__ == "Linear")
    answers = sampler.generate(["a man plays the guitar", "two trains"], 2, GapTextConfig(max_new_tokens=5))
    assert [len(a) for a in answers] == [2, 2] and all(isinstance(t, str) for a in answers for t in a)
