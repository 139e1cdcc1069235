#!/usr/bin/env python
"""Thin wrapper: see ragcun.cli.prepare_data (`--help` lists every option)."""

import sys

from ragcun.cli.prepare_data import main

if __name__ == "__main__":
    sys.exit(main())
