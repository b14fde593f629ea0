"""The emotion label set EmoVIT is trained on; imported by the model config and by the dataset's label spaces."""

# Mikels' eight emotion categories (Mikels et al., 2005), as used by EmoSet and FI (EmoVIT Sec. 3), in the order
# EmoVIT lists them as candidates.
MIKELS_EMOTIONS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")
