"""User-facing errors and the CLI wrapper that prints them as a single line."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable


class UserError(Exception):
    """An error caused by the user's input (data, config, paths), shown without a traceback."""


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap ``main(argv)`` so that a UserError prints ``error: <message>`` and exits 2.

    Args:
        main: the entry point; it returns an exit code or None for success.

    Returns:
        A function with the same signature that returns an exit code.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            code = main(*args, **kwargs)
        except UserError as exc:
            logging.getLogger(main.__module__).debug("user error", exc_info=True)
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return 0 if code is None else int(code)

    return wrapper
