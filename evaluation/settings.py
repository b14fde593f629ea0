"""What one `emovit eval` run is: task, model, data, label space, mode, paraphrases, and what identifies it for
resuming."""

from dataclasses import asdict, dataclass

from dataset_builder.instructions import CATEGORICAL_PARAPHRASES
from modeling_emovit.errors import EmoVITInputError

TASKS = ("classification", "reasoning", "humor")
ANSWER_FORMATS = ("categorical", "reasoning")  # reasoning: `dataset_builder.reasoning_format`, what GRPO trains
JUDGED_TASKS = TASKS[1:]  # free-text answers judged by an LLM (`evaluation.judge`)


@dataclass
class EvalSettings:
    model: str
    data: str
    out: str
    task: str = "classification"  # one of TASKS
    config: str = "categorical"
    split: str = "test"
    label_space: str | None = None  # default: the dataset's own `label_space` column
    mode: str = "rank"  # "rank" | "generate"
    paraphrases: int = 1  # instruction paraphrases asked per image (1: EmoVIT's instruction only)
    batch_size: int = 8
    max_new_tokens: int | None = None  # generate mode; default: longest candidate answer + 4 (release preset: 256)
    generation: str = "default"  # generate mode: a GENERATION_PRESETS name ("release": the release's LAVIS decoding)
    # "categorical" (EmoVIT's answer) | "reasoning" (think, answer, confidence: classification in generate mode reads
    # all three, the judged reasoning task has the judge score the think text)
    answer_format: str = "categorical"
    calibrate_on: str | None = None  # rank mode: fit the probabilities' calibration on this dataset's split first
    calibrate_split: str = "validation"
    trust_remote_code: bool = False  # run the model's own code (`auto_map`); not part of what a resumed run must match

    def identity(self) -> dict:
        """What must match for `out` to be resumed: every setting but `out` and the batch size."""
        return {k: v for k, v in asdict(self).items() if k not in ("out", "batch_size", "trust_remote_code")}

    def check(self) -> None:
        """Refuses, in one sentence, a setting outside its range."""
        if self.task not in TASKS:
            raise EmoVITInputError(f"--task must be {', '.join(TASKS[:-1])} or {TASKS[-1]}, not {self.task!r}.")
        if self.mode not in ("rank", "generate"):
            raise EmoVITInputError(f"--mode must be 'rank' or 'generate', not {self.mode!r}.")
        if not 1 <= self.paraphrases <= len(CATEGORICAL_PARAPHRASES):
            raise EmoVITInputError(f"--paraphrases must be between 1 and {len(CATEGORICAL_PARAPHRASES)}, not {self.paraphrases}.")
        from modeling_emovit.decoding import GENERATION_PRESETS

        if self.generation not in GENERATION_PRESETS:
            raise EmoVITInputError(f"--generation must be one of {', '.join(GENERATION_PRESETS)}, not {self.generation!r}.")
        if self.answer_format not in ANSWER_FORMATS:
            raise EmoVITInputError(f"--answer-format must be one of {', '.join(ANSWER_FORMATS)}, not {self.answer_format!r}.")
        if self.answer_format == "reasoning" and self.task == "humor":
            raise EmoVITInputError("--answer-format reasoning reads a reasoning chain: use it with --task "
                                   "classification or --task reasoning, not humor.")
        if self.answer_format == "reasoning" and self.task == "classification" and (
                self.mode != "generate" or self.paraphrases != 1):
            raise EmoVITInputError("--answer-format reasoning asks its one reasoning question in generate mode: use it "
                                   "with --mode generate and --paraphrases 1.")
        if self.calibrate_on and self.mode != "rank":
            raise EmoVITInputError("--calibrate-on calibrates rank-mode probabilities: use it with --mode rank.")
        if self.batch_size < 1:
            raise EmoVITInputError(f"--batch-size must be at least 1, not {self.batch_size}.")
