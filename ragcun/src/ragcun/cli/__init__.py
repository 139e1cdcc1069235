"""Command-line entry points: ``prepare_data``, ``train`` and ``evaluate`` (wrapped by ragcun/scripts/)."""
