"""Run folders: where a run is written, resume rules, the last checkpoint, and the run's log file.

A run is built in ``<output_dir>/.<run_name>.partial`` and renamed to ``<output_dir>/<run_name>``
when it succeeds, so a failed or interrupted run never leaves a folder that looks finished.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path

from embedding_ft.config import TrainConfig
from embshared.errors import UserError
from embshared.runtime import LOG_FORMAT


def default_run_name(cfg: TrainConfig) -> str:
    stem = Path(cfg.dataset_name.rstrip("/")).name.replace(".", "-") or "run"
    return f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"


def _find_partial(output_dir: Path) -> Path | None:
    partials = sorted(output_dir.glob(".*.partial"), key=lambda p: p.stat().st_mtime)
    return partials[-1] if partials else None


def plan_run_dirs(cfg: TrainConfig) -> tuple[Path, Path]:
    """(work dir, final dir) for a run; checks resume/overwrite rules before anything is written."""
    output_dir = Path(cfg.output_dir)
    if cfg.resume and not cfg.run_name:
        partial = _find_partial(output_dir) if output_dir.is_dir() else None
        if partial is None:
            raise UserError(f"resume=true: no interrupted run in {output_dir} (pass run_name=...)")
        name = partial.name[1 : -len(".partial")]
    else:
        name = cfg.run_name or default_run_name(cfg)
    final, work = output_dir / name, output_dir / f".{name}.partial"
    if final.exists():
        raise UserError(f"{final} already exists; choose another run_name")
    if cfg.resume and not work.is_dir():
        raise UserError(f"resume=true: {work} not found (nothing to resume)")
    if not cfg.resume and work.exists():
        shutil.rmtree(work)  # a stale partial run of the same name that the user chose not to resume
    return work, final


def plan_on_main_process(cfg: TrainConfig, state) -> tuple[Path, Path]:
    """Plan the run folders once, on the main process, and give every process the same answer."""
    planned: object
    try:
        planned = plan_run_dirs(cfg) if state.is_main_process else None
    except UserError as exc:
        planned = exc
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        planned = broadcast_object_list([planned])[0]
    if isinstance(planned, UserError):
        raise planned
    return planned


def last_checkpoint(checkpoint_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None


def attach_log_file(path: Path | None, handler: logging.Handler | None = None) -> logging.Handler | None:
    """Add a run log file to the root logger (path given), or remove and close ``handler``."""
    root = logging.getLogger()
    if handler is not None:
        root.removeHandler(handler)
        handler.close()
        return None
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler
