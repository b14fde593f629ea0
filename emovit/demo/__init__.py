"""`emovit demo`: the whole EmoVIT pipeline on a drawn sample, on CPU, in a few minutes."""
