"""The losses: NT-Xent (InfoNCE over both views, as in SimCLR) and distillation from a teacher: to its vectors
(``cosine`` / ``mse``) or to its in-batch ranking of records for each query view (``ranking``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DISTILL_LOSSES = ("cosine", "mse", "ranking")


def nt_xent_loss(view_a: torch.Tensor, view_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent loss of two batches of unit vectors where row i of each is the same record.

    Every view must pick out its partner among the other ``2n - 1`` views of the batch.

    Args:
        view_a, view_b: (n, dim) L2-normalised embeddings.
        temperature: softmax temperature.

    Returns:
        The mean cross-entropy over all 2n views (a scalar).
    """
    n = view_a.shape[0]
    views = torch.cat([view_a, view_b], dim=0)  # (2n, dim)
    logits = views @ views.T / temperature  # (2n, 2n)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=views.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(views.device)  # (2n,)
    return F.cross_entropy(logits, targets)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """Distance of the student's vectors to the teacher's, averaged over the rows.

    Args:
        student: (n, dim) the student's vectors, already in the teacher's space (see
            :class:`DistillationHead`); need not be unit length.
        teacher: (n, dim) the teacher's unit vectors.
        kind: ``cosine``: ``1 - cos``, blind to the student's length; ``mse``: the squared
            Euclidean distance (summed over dimensions, so that for unit vectors it is
            ``2 - 2 cos`` and its weight is on the same scale as the cosine loss's).

    Returns:
        A scalar.
    """
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    if kind == "mse":
        return (student - teacher).pow(2).sum(dim=-1).mean()
    raise ValueError(f"unknown distillation loss {kind!r} (choose from {', '.join(DISTILL_LOSSES)})")


def ranking_distill_loss(
    student_views: torch.Tensor,
    student_records: torch.Tensor,
    teacher_views: torch.Tensor,
    teacher_records: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """KL from the teacher's to the student's softmax over the batch's records, for each query view.

    Row i of the views and of the records is the same record. The student's scores are its
    cosines; the teacher's, the dot products of its unit vectors; both divided by
    ``temperature``. Only the ranking is learned, not the teacher's coordinates: a student
    that cannot reproduce the teacher's vectors (a character CNN reached a cosine of 0.49 to
    MiniLM's on SciFact) can still order the records as the teacher does, which is what search reads.

    Args:
        student_views, student_records: (n, d) the student's vectors (any length).
        teacher_views, teacher_records: (n, D) the teacher's unit vectors.
        temperature: the softmax temperature of both score matrices.

    Returns:
        A scalar: the mean over the views of KL(teacher || student).
    """
    student = F.normalize(student_views, dim=-1) @ F.normalize(student_records, dim=-1).T / temperature
    teacher = teacher_views @ teacher_records.T / temperature
    return F.kl_div(
        F.log_softmax(student, dim=-1), F.log_softmax(teacher, dim=-1), log_target=True, reduction="batchmean"
    )


class DistillationHead(nn.Module):
    """Maps the student's vectors into the teacher's space for the loss, and only for the loss.

    With equal sizes it is the identity (no weights): the student's own space is pulled onto
    the teacher's. Otherwise it is a learned linear map ``student_dim -> teacher_dim``
    (no bias) trained with the student. It is never saved with the model: search uses the
    student's vectors as they are, and the model file stays the character CNN alone.
    """

    def __init__(self, student_dim: int, teacher_dim: int):
        super().__init__()
        self.projection = nn.Linear(student_dim, teacher_dim, bias=False) if student_dim != teacher_dim else None

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """(n, student_dim) -> (n, teacher_dim)."""
        return vectors if self.projection is None else self.projection(vectors)
