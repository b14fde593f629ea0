"""The one record every source reader yields, whatever the dataset's own layout."""

from dataclasses import dataclass, field


@dataclass
class EmotionRecord:
    """One labelled image.

    `attributes` holds EmoSet's visual clues when known: brightness and colorfulness (floats in [0, 1]), scene,
    object (a list of names), facial_expression, human_action; absent clues are None (object: []).
    `label_distribution` keeps per-label probabilities where a dataset has them (Emotion6).
    `tasks` limits which instructions the image gets (None: every task built): an EmoVIT instruction file gives
    categorical rows only to the images it has categorical entries for, and `--mix release` picks tasks by position.
    """

    id: str
    image_path: str
    label: str | None
    label_space: str
    split: str
    source: str
    attributes: dict = field(default_factory=dict)
    caption: str | None = None
    label_distribution: dict[str, float] | None = None
    tasks: tuple[str, ...] | None = None
