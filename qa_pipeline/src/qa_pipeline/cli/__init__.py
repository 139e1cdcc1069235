"""The command lines of qa_pipeline, one ``main(argv)`` per command: parse the flags and the config,
start the run, call the library, print a summary. ``python -m qa_pipeline.extract|generate|finetune``
(the guide's names, used by ``make qa-*``) run these."""
