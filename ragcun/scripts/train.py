#!/usr/bin/env python
"""Thin wrapper: see ragcun.cli.train (`--help` lists every option)."""

import sys

from ragcun.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
