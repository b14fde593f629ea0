"""Training glue for recipes/sft.py: the EmoVIT collator, trainer, guards and the vision-feature cache."""
