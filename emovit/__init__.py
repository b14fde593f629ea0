"""The `emovit` command line: one entry point over modeling_emovit, dataset_builder, recipes and evaluation."""

__version__ = "0.1.0"  # the one place the version is written (setup.cfg reads it)
