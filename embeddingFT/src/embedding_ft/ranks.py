"""One corpus pass spread over processes and machines with accelerate (``make index-embed NPROC=2``, ``NNODES=``).

The launcher is training's (``accelerate launch``, the same ``NPROC``, ``NNODES``,
``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): under it, :class:`accelerate.PartialState`
joins the processes (gloo on CPU, NCCL on GPUs) and :func:`encode_by_rank` runs the pass:

1. the main process resolves the back end first (``auto``: exports and measures once, into the
   shared cache), then hands its choice to every rank, so all ranks encode alike;
2. each rank takes its contiguous slice of the collection
   (:meth:`accelerate.PartialState.split_between_processes`) and encodes it through its own
   :class:`embedding_ft.corpus_encoder.CorpusEncoder` (length-sorted batches, shards, resume,
   cache: a killed rank resumes its own slice);
3. the slices are gathered to the main process in fixed-size chunks
   (:func:`accelerate.utils.gather`, padded to one shape per chunk; the main process writes each
   chunk into a memory-mapped array), so no process holds more than a chunk per rank beyond its
   own slice, and machines need no shared file system.

The main process then writes one index from the gathered vectors; the other ranks write nothing.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

GATHER_ROWS = 16_384  # rows per rank per gather: 16k x 384 floats = 24 MB per rank


def encode_by_rank(corpus, texts: list[str], state, show_progress: bool = True) -> np.ndarray | None:
    """The (n, dim) vectors of ``texts`` in their order on the main process (memory-mapped), None on the others.

    Args:
        corpus: this rank's :class:`embedding_ft.corpus_encoder.CorpusEncoder` (same model, back end and
            settings on every rank; ``backend="auto"`` is resolved by the main process).
        texts: the whole collection, the same list on every rank.
        state: an :class:`accelerate.PartialState`.
    """
    from accelerate.utils import broadcast_object_list

    with state.main_process_first():  # the main process exports / measures first; the others find its files
        chosen = [corpus.resolve_backend(texts) if state.is_main_process else None]
    broadcast_object_list(chosen, from_process=0)
    if not state.is_main_process:
        corpus.use(*chosen[0])  # the main process's choice, loaded here
    with state.split_between_processes(list(range(len(texts)))) as rows:
        lo, hi = (rows[0], rows[-1] + 1) if rows else (0, 0)
    mine = corpus.encode(texts[lo:hi], show_progress=show_progress and state.is_main_process)
    logger.info("rank %d encoded documents %d-%d", state.process_index, lo, hi)
    return _gather(np.asarray(mine, dtype=np.float32), len(texts), state)


def _gather(mine: np.ndarray, n: int, state) -> np.ndarray | None:
    """Every rank's slice, in rank order, into one memory-mapped (n, dim) array on the main process."""
    import torch
    from accelerate.utils import gather

    device = state.device
    sizes = gather(torch.tensor([len(mine), mine.shape[1] if mine.size else 0], device=device)).view(-1, 2).cpu()
    counts, dim = sizes[:, 0].tolist(), int(sizes[:, 1].max())
    if sum(counts) != n:
        raise RuntimeError(f"the ranks encoded {sum(counts)} documents of {n}")
    out = None
    if state.is_main_process:
        handle = tempfile.NamedTemporaryFile(suffix=".npy", delete=False)  # noqa: SIM115 (removed with the array)
        handle.close()
        out = np.lib.format.open_memmap(handle.name, mode="w+", dtype=np.float32, shape=(n, dim))
        Path(handle.name).unlink()  # the mapping stays valid; the file goes when it is dropped
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for chunk in range(-(-max(counts) // GATHER_ROWS)):
        a = chunk * GATHER_ROWS
        block = np.zeros((GATHER_ROWS, dim), dtype=np.float32)
        part = mine[a : a + GATHER_ROWS]
        block[: len(part)] = part
        gathered = gather(torch.from_numpy(block).to(device)).cpu().numpy()  # (ranks * GATHER_ROWS, dim)
        if out is not None:
            for rank, count in enumerate(counts):
                take = max(0, min(GATHER_ROWS, count - a))
                if take:
                    out[starts[rank] + a : starts[rank] + a + take] = gathered[
                        rank * GATHER_ROWS : rank * GATHER_ROWS + take
                    ]
    state.wait_for_everyone()
    return out
