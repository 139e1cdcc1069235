"""embshared.bench: results files with their command and machine facts, the embedding cache, percentiles."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from embshared.bench import cached_embeddings, machine_facts, percentiles, rss_mb, shared_cores, write_results


def test_write_results_has_command_machine_and_both_files(tmp_path):
    facts = machine_facts()
    assert set(facts) >= {"cpu", "cores", "torch_threads", "torch", "cuda", "python", "load_average_start"}
    json_path, md_path = write_results(
        tmp_path / "v", "speed", {"rate": 3.5}, "# Speed\n\n| a |\n", command="make bench-x N=1", facts=facts
    )
    data = json.loads(json_path.read_text())
    assert data["rate"] == 3.5 and data["command"] == "make bench-x N=1"
    assert data["machine"]["cores"] == facts["cores"] and len(data["machine"]["load_average_end"]) == 3
    assert data["machine"]["peak_rss_gb"] > 0
    text = md_path.read_text()
    assert text.startswith("# Speed") and "Reproduce: `make bench-x N=1`" in text
    assert not list((tmp_path / "v").glob("*.tmp*"))


def test_shared_cores_and_percentiles():
    assert shared_cores({"cores": 2, "load_average_start": [0.1, 0.2], "load_average_end": [1.9, 1.0]})
    assert not shared_cores({"cores": 2, "load_average_start": [0.1, 0.2]})
    # measured CPU of other processes decides over the load (the bench's own servers load the cores too)
    busy_alone = {"cores": 2, "load_average_end": [1.9, 1.9], "other_cpu_seconds": 3.0, "run_seconds": 600.0}
    assert not shared_cores(busy_alone)
    assert shared_cores({**busy_alone, "other_cpu_seconds": 90.0})


def test_a_childs_cpu_is_the_bench_own_once_it_ended():
    """own_cpu_seconds counts a child that ended (a stopped server), so it is not "other" CPU."""
    import subprocess
    import sys

    from embshared.bench import busy_cpu_seconds, other_cpu, own_cpu_seconds

    facts = machine_facts()
    before = own_cpu_seconds()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert own_cpu_seconds() - before >= 0.9
    assert busy_cpu_seconds() > 0
    measured = other_cpu(facts)
    assert measured["run_seconds"] >= 0.9 and measured["other_cpu_seconds"] >= 0
    assert other_cpu({}) == {}
    p = percentiles([1, 2, 3, 4, 100])
    assert p["p50_ms"] == 3 and p["n"] == 5 and p["mean_ms"] == 22
    assert p["p95_ms"] == pytest.approx(80.8)  # numpy's linear interpolation: 4 + 0.8 * 96


def test_latency_percentiles_times_each_item_after_one_warm_up():
    from embshared.bench import latency_percentiles

    seen = []

    def call(item):
        seen.append(item)
        if item == "slow":
            time.sleep(0.05)

    p = latency_percentiles(call, ["slow", "fast", "fast", "fast"])
    assert seen == ["slow", "slow", "fast", "fast", "fast"]  # the first item twice: the warm-up, then timed
    assert p["n"] == 4 and p["p50_ms"] < 10 and p["mean_ms"] >= 50 / 4


def test_cached_embeddings_reuses_the_file(tmp_path):
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return np.ones((len(texts), 3), dtype=np.float32)

    a = cached_embeddings(["x", "y"], embed, tmp_path, "m")
    b = cached_embeddings(["x", "y"], embed, tmp_path, "m")
    cached_embeddings(["x", "z"], embed, tmp_path, "m")
    assert calls == [2, 2] and np.array_equal(a, b)
    assert len(list(tmp_path.glob("emb-*.npy"))) == 2


def test_rss_mb_reads_this_process_and_none_for_no_process():
    import resource

    peak = rss_mb(os.getpid(), "VmHWM")
    # the kernel's own peak in KiB, through getrusage: the same figure in MiB (a unit slip would be 1024x off)
    assert peak == pytest.approx(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rel=0.02)
    assert 0 < rss_mb() <= rss_mb("self", "VmHWM")
    assert rss_mb(2**22 + 12345) is None  # beyond Linux's pid range
