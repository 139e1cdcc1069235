import numpy as np
import pytest

from embshared.errors import UserError
from embshared.io import DataError, read_sts
from gapfill.config import GapConfig, UMAPConfig
from gapfill.corpus import sts_sentences
from gapfill.gaps import find_gaps
from gapfill.parametric_umap import ParametricUMAP
from gapfill.pipeline import decode_point, spacing
from gapfill.quality import round_trip, trustworthiness


def grid_with_hole(n: int = 30, hole=(0.5, 0.5), radius: float = 0.2) -> np.ndarray:
    g = np.linspace(0, 1, n)
    pts = np.array([(x, y) for x in g for y in g])
    return pts[np.linalg.norm(pts - np.array(hole), axis=1) > radius]


def test_largest_gap_is_the_hole():
    pts = grid_with_hole(hole=(0.3, 0.6), radius=0.2)
    gaps = find_gaps(pts, GapConfig(grid_size=81, max_gaps=5))
    assert gaps, "the hole is a gap"
    top = gaps[0]
    assert np.hypot(top.x - 0.3, top.y - 0.6) < 0.03
    assert top.radius == pytest.approx(0.2, abs=0.03)
    assert top.radius_ratio > 5
    assert [g.radius for g in gaps] == sorted((g.radius for g in gaps), reverse=True)
    assert np.linalg.norm(pts[top.nearest] - [top.x, top.y], axis=1).max() < 0.25


def test_no_gaps_in_an_even_grid_and_none_outside_the_hull():
    g = np.linspace(0, 1, 20)
    even = np.array([(x, y) for x in g for y in g])
    assert find_gaps(even, GapConfig(grid_size=64)) == []
    # an L-shaped layout: its empty corner is inside the bounding box but partly outside the hull
    l_shape = np.array([p for p in even if p[0] < 0.3 or p[1] < 0.3])
    for gap in find_gaps(l_shape, GapConfig(grid_size=64)):
        # centres are inside the convex hull, whose boundary is the line x + y = 1.3 on that side
        assert gap.x + gap.y <= 1.3 + 1e-6


def test_find_gaps_rejects_bad_shapes():
    with pytest.raises(UserError):
        find_gaps(np.zeros((10, 3)))
    with pytest.raises(UserError):
        find_gaps(np.zeros((2, 2)))


def test_read_sts_names_file_and_line(tmp_path):
    good = "g\tf\t2012\t1\t5.000\tA plane takes off.\tAn air plane is taking off.\n"
    extra = "g\tf\t2012\t2\t1.5\tA man.\tA woman.\tsrc\tlicense\n"
    (tmp_path / "sts-train.csv").write_text(good + extra + good)
    pairs = read_sts(tmp_path / "sts-train.csv")
    assert len(pairs) == 3 and pairs[1].score == 1.5 and pairs[1].sentence2 == "A woman."
    assert sts_sentences(tmp_path) == ["A plane takes off.", "An air plane is taking off.", "A man.", "A woman."]
    (tmp_path / "bad.csv").write_text(good + "g\tf\t2012\t3\tfive\ta\tb\n")
    with pytest.raises(DataError, match=r"bad.csv:2: field 'score'"):
        read_sts(tmp_path / "bad.csv")
    (tmp_path / "short.csv").write_text("a\tb\n")
    with pytest.raises(DataError, match=r"short.csv:1: expected at least 7"):
        read_sts(tmp_path / "short.csv")


def test_quality_metrics_of_a_trained_map(clusters, knn_graph):
    x, _ = clusters
    cfg = UMAPConfig(n_neighbors=10, n_epochs=10, batch_size=256, hidden_layers=[64, 64], validation_split=0.0)
    model = ParametricUMAP(cfg, graph_builder=knn_graph).fit(x)
    z = model.transform(x)
    # a layout that keeps the two clusters apart is far more trustworthy than a random one
    rand = np.random.default_rng(0).standard_normal(z.shape)
    assert trustworthiness(x, z) > trustworthiness(x, rand) + 0.1
    rt = round_trip(model, x)
    assert 0.5 < rt["embedding_round_trip_cosine_mean"] <= 1.0
    assert rt["map_round_trip_distance_over_spacing"] >= 0
    assert rt["map_spacing"] == pytest.approx(spacing(z))
    e = decode_point(model, z[0])
    assert e.shape == (16,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
