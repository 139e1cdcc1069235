"""Command-line entry points, one ``main(argv)`` per file: ``train_vec2text``, ``serve``, ``fill``.

``python -m gapfill.cli <command> ...`` runs them by their command names (see ``__main__``).
"""

#: command name -> module (under gapfill.cli) holding its main(argv)
COMMANDS = {"train-vec2text": "train_vec2text", "serve": "serve", "fill": "fill"}
