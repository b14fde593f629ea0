"""`dataset_streaming: true` as a specification: the trainer gets a `datasets.IterableDataset`, the run is as long as
`max_steps` says (transformers needs it for data without a length), and only the rows the steps need are decoded,
with nothing copied into the datasets cache first. What a stream cannot do is refused in one sentence."""

import json

import pytest
from train_helpers import TINY_RECIPE, write_dataset

from emovit.training import sft

FAST = ["--model_name_or_path", "tiny-random", "--disable_tqdm", "true", "--save_strategy", "no", "--logging_steps", "1"]
PAPER_RECIPE = TINY_RECIPE.parents[1] / "emovit-vicuna-7b" / "sft.yaml"


def test_a_streamed_run_trains_max_steps_from_an_iterable_dataset_and_decodes_only_the_rows_it_needs(tmp_path,
                                                                                                        monkeypatch):
    import datasets

    from dataset_builder.loading import load_split
    from emovit.training.collator import EmoVITCollator
    from emovit.training.trainer import EmoVITSFTTrainer

    data = write_dataset(tmp_path / "data", rows=40)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    given, collated = [], []
    trainer_init, collate = EmoVITSFTTrainer.__init__, EmoVITCollator.__call__
    monkeypatch.setattr(EmoVITSFTTrainer, "__init__",
                        lambda self, *args, **kwargs: given.append(kwargs["train_dataset"]) or trainer_init(self, *args, **kwargs))
    monkeypatch.setattr(EmoVITCollator, "__call__",
                        lambda self, rows: collated.extend(row["id"] for row in rows) or collate(self, rows))

    metrics = sft.train(*sft.parse_recipe(["--config", str(TINY_RECIPE), *FAST, "--dataset_name", str(data),
                                           "--output_dir", str(tmp_path / "out"), "--dataset_streaming", "true",
                                           "--max_steps", "3", "--per_device_train_batch_size", "2"]))

    assert len(given) == 1 and isinstance(given[0], datasets.IterableDataset)
    assert json.loads((tmp_path / "out" / "trainer_state.json").read_text())["global_step"] == 3
    # 3 steps x 2 rows, plus the batch accelerate's DataLoaderShard reads ahead to see the end coming: 8 of 40
    assert len(collated) == 8 == len(set(collated))
    assert collated != [f"{i:05d}" for i in range(6)]  # drawn through the shuffle buffer, not in file order
    assert metrics["train_samples"] == 40  # counted from the Parquet footers, not by reading the rows
    assert not list((tmp_path / "cache").rglob("*.arrow"))
    load_split(str(data), "categorical", "train", required=("image",))  # not streamed: the rows go to the cache
    assert list((tmp_path / "cache").rglob("*.arrow"))


@pytest.mark.parametrize("recipe, flags, refusal", [
    (TINY_RECIPE, ["--max_steps", "-1"], "dataset_streaming: a streamed dataset has no length, so the run is as long "
                                         "as max_steps says (as in transformers); set --max_steps N"),
    (PAPER_RECIPE, ["--max_steps", "2"], "lr_schedule: lavis holds each epoch's rate for a whole epoch"),
    (TINY_RECIPE, ["--max_steps", "2", "--vision_feature_cache", "features"], "vision_feature_cache joins its features"),
])
def test_what_a_stream_cannot_do_is_refused_in_one_sentence_before_the_model_loads(recipe, flags, refusal, tmp_path,
                                                                                   capsys):
    code = sft.main(["--config", str(recipe), *FAST, "--use_cpu", "true", "--fp16", "false", "--dataset_name", str(tmp_path),
                     "--output_dir", str(tmp_path / "out"), "--dataset_streaming", "true", *flags])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and refusal in error
    assert not (tmp_path / "out").exists()
