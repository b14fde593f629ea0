"""The `emovit` command line: one entry point over modeling_emovit, dataset_builder, recipes and evaluation."""
