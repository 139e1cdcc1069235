#!/usr/bin/env python
"""Thin wrapper: see ragcun.cli.evaluate (`--help` lists every option)."""

import sys

from ragcun.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
