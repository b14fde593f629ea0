"""The paper recipe against the original release's training protocol, on tiny models.

Reference values come from LAVIS's source as the release ran it: `common/optims.py` (`linear_warmup_cosine_lr`),
`processors/blip_processors.py` (`blip2_image_train`, `blip_caption`), `models/base_model.py`
(`get_optimizer_params`: no weight decay for `ndim < 2`, "bias", "ln", "bn"; `Blip2Base` overrides it in `blip2.py`
l.105 and decays the same set), the release's `blip2_vicuna_instruct.py` (trainable modules, "Complex" deleted from
answers, the answer tokenizer call) and `tests/fixtures/lavis_keys.json` (which parameters `_save_checkpoint` keeps,
i.e. the trainable ones); torchvision's `F.resized_crop` (crop, then resize) for the augmentation.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from train_helpers import write_dataset

from dataset_builder.instructions import categorical_instruction
from emovit.training.text_processors import pre_caption, process_text
from emovit.training import sft
from emovit.training.augmentation import LavisTrainTransform, crop_box
from lavis_checkpoints import lavis_state_dict, saved_by_save_checkpoint
from modeling_emovit.backbone import backbone_adapter
from modeling_emovit.convert_lavis import lavis_to_transformers
from modeling_emovit.labels import MIKELS_EMOTIONS
from modeling_emovit.testing import tiny_emovit

PAPER_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "emovit-vicuna-7b" / "sft.yaml"
# The paper recipe on a tiny model and 8 rows, batch 2: 4 optimizer steps per epoch, warmup cut to 3 steps.
TINY_RUN = ["--model_name_or_path", "tiny-random", "--use_cpu", "true", "--fp16", "false", "--disable_tqdm", "true",
            "--per_device_train_batch_size", "2", "--warmup_steps", "3", "--save_strategy", "no", "--logging_steps", "1",
            "--dataloader_num_workers", "0", "--report_to", "none", "--dataset_config", "categorical"]


def test_paper_recipe_runs_the_lavis_schedule_per_epoch_even_when_fp16_skips_steps(tmp_path, monkeypatch):
    from accelerate import Accelerator

    data = write_dataset(tmp_path / "data", rows=8)
    args = sft.parse_recipe(["--config", str(PAPER_RECIPE), *TINY_RUN, "--dataset_name", str(data),
                             "--output_dir", str(tmp_path / "out")])
    assert (args[0].lr_schedule, args[0].augmentation, args[0].text_processor) == ("lavis", "lavis", "release")
    # The fp16 grad scaler skips optimizer steps 1, 2 and 6 (an overflow); transformers then leaves out
    # `lr_scheduler.step()`, while LAVIS still sets the next iteration's rate from (epoch, iteration).
    asked = []
    monkeypatch.setattr(Accelerator, "optimizer_step_was_skipped",
                        property(lambda self: asked.append(len(asked)) or asked[-1] in (1, 2, 6)))

    sft.train(*args)

    assert len(asked) == 16  # the trainer asked once per optimizer step: the skips happened

    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    rates = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    # LAVIS: epoch 0 warmup_lr + (init_lr - warmup_lr) * i / warmup_steps, capped at init_lr (1e-8 -> 1e-5 over 3
    # steps); then (init_lr - min_lr) * 0.5 * (1 + cos(pi * e / 4)) + min_lr for the whole of epoch e.
    warmup = [1e-8, 1e-8 + (1e-5 - 1e-8) / 3, 1e-8 + 2 * (1e-5 - 1e-8) / 3, 1e-5]
    expected = warmup + [8.5370e-6] * 4 + [5.0050e-6] * 4 + [1.4730e-6] * 4
    assert rates == pytest.approx(expected, rel=1e-4)


def test_trainable_parameters_and_weight_decay_are_lavis_own():
    from transformers import Trainer

    model, _ = tiny_emovit("llama")
    model.freeze_for_instruction_tuning()
    # What LAVIS trains is what its _save_checkpoint keeps, less the buffers.
    lavis = {key: tensor for key, tensor in saved_by_save_checkpoint(lavis_state_dict(model, "blip2_vicuna_instruct"),
                                                                     "blip2_vicuna_instruct").items()
             if not key.endswith(("position_ids", "inv_freq"))}
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable == set(lavis_to_transformers(lavis).weights)
    lavis_decayed = {key: tensor for key, tensor in lavis.items()
                     if not (tensor.ndim < 2 or "bias" in key or "ln" in key or "bn" in key)}
    decayed = set(Trainer.get_decay_parameter_names(None, model)) & trainable  # the method does not use the trainer
    assert decayed == set(lavis_to_transformers(lavis_decayed).weights)


def test_crop_boxes_follow_random_resized_crop_scale_and_ratio():
    torch.manual_seed(0)
    boxes = [crop_box(300, 200) for _ in range(400)]
    areas = [w * h / (300 * 200) for _, _, w, h in boxes]
    ratios = [w / h for _, _, w, h in boxes]
    assert all(0 <= left and left + w <= 300 and 0 <= top and top + h <= 200 for left, top, w, h in boxes)
    assert min(areas) > 0.49 and max(areas) <= 1.0 and max(areas) - min(areas) > 0.3
    assert min(ratios) > 0.74 and max(ratios) < 1.35 and len(set(boxes)) > 300


def test_lavis_transform_flips_about_half_the_time_and_repeats_under_a_seed():
    image = Image.new("RGB", (64, 48))
    image.paste((255, 0, 0), (0, 0, 32, 48))  # left half red, right half black
    transform = LavisTrainTransform(size=32)
    torch.manual_seed(1)
    outputs = [transform(image) for _ in range(200)]
    assert {output.size for output in outputs} == {(32, 32)}
    flipped = sum(output.getpixel((0, 16))[0] < 128 and output.getpixel((31, 16))[0] > 128 for output in outputs)
    assert 60 < flipped < 140
    torch.manual_seed(1)
    assert all(transform(image).tobytes() == output.tobytes() for output in outputs[:5])


def test_the_categorical_instruction_as_the_release_model_saw_it():
    instruction = categorical_instruction(MIKELS_EMOTIONS)
    prompt, answer = process_text("release", instruction, "Predict emotion: awe")
    assert prompt == (
        " please select the emotion closest to the image from the following options amusement, anger, awe, "
        "contentment, disgust, excitement, fear and sadness do not provide answers outside of the candidates "
        "options please answer in the following format predict emotion"
    )
    assert answer == "Predict emotion: awe"


def test_pre_caption_keeps_what_lavis_keeps_and_cuts_at_50_words():
    assert pre_caption('Well-lit, 9/10? "It\'s" (fine); ok~ #1 *a* b:c.') == "well-lit, 9/10? it's fine ok 1 a b c"
    assert pre_caption("one\ntwo  \n\n three") == "one\ntwo three"
    assert pre_caption(" ".join(f"w{i}" for i in range(60))) == " ".join(f"w{i}" for i in range(50))


def test_release_text_processing_deletes_complex_from_answers_only():
    assert process_text("release", "Complex question: why?", "Complex Answer: Complex scenes.") == (
        " complex question why?", " Answer:  scenes."
    )
    assert process_text("lavis", "Q", "Complex") == (" q", "Complex")
    assert process_text("none", "Q.", "A.") == ("Q.", "A.")


def test_collator_feeds_the_processed_instruction_to_both_the_qformer_and_the_lm():
    from emovit.training.collator import EmoVITCollator

    model, processor = tiny_emovit("llama")
    rows = [{"image": Image.new("RGB", (40, 30), (200, 10, 10)), "prompt": "What Emotion: (Pick One).",
             "completion": "Predict emotion: awe"}]
    batch = EmoVITCollator(backbone_adapter(model, processor), text_processor="lavis")(rows)
    assert processor.qformer_tokenizer.decode(batch["qformer_input_ids"][0], skip_special_tokens=True) == "what emotion pick one"
    assert processor.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True).endswith(
        " what emotion pick onePredict emotion: awe")


def test_augmented_collator_draws_a_new_view_each_time():
    from emovit.training.augmentation import training_transform
    from emovit.training.collator import EmoVITCollator

    model, processor = tiny_emovit("llama")
    gradient = Image.linear_gradient("L").convert("RGB").resize((80, 60))
    rows = [{"image": gradient, "prompt": "Q", "completion": "A"}]
    collator = EmoVITCollator(backbone_adapter(model, processor), augment=training_transform("lavis", processor))
    first, second = collator(rows)["pixel_values"], collator(rows)["pixel_values"]
    assert first.shape == second.shape == (1, 3, 32, 32) and not torch.equal(first, second)


def test_augmentation_with_a_feature_cache_is_refused_in_one_sentence(tmp_path, capsys):
    code = sft.main(["--config", str(PAPER_RECIPE), *TINY_RUN, "--dataset_name", str(tmp_path),
                     "--output_dir", str(tmp_path / "out"), "--vision_feature_cache", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2 and "augmentation: lavis" in error and "vision_feature_cache" in error
    assert len(error.strip().splitlines()) == 1


def test_lavis_schedule_without_min_lr_is_refused(tmp_path, capsys):
    code = sft.main(["--config", str(PAPER_RECIPE), *TINY_RUN, "--dataset_name", str(tmp_path),
                     "--output_dir", str(tmp_path / "out"), "--lr_scheduler_type", "cosine"])
    assert code == 2 and "min_lr" in capsys.readouterr().err


def test_lavis_epoch_rates_with_the_release_values():
    from emovit.training.schedule import LavisSchedule

    schedule = LavisSchedule(1e-5, 1e-8, 1e-8, 30000, 4, steps_per_epoch=61600)
    assert [schedule.learning_rate(step) for step in (0, 15000, 30000, 61599)] == pytest.approx(
        [1e-8, 1e-8 + (1e-5 - 1e-8) / 2, 1e-5, 1e-5])
    per_epoch = [schedule.learning_rate(61600 * epoch + 7) for epoch in (1, 2, 3)]
    assert per_epoch == pytest.approx([(1e-5 - 1e-8) * 0.5 * (1 + math.cos(math.pi * e / 4)) + 1e-8 for e in (1, 2, 3)])
    assert per_epoch == pytest.approx([8.537e-6, 5.005e-6, 1.473e-6], rel=1e-3)


def _lavis_greedy(model, processor, image, prompt, steps, penalty):
    """LAVIS `generate` by hand: greedy, EOS barred at the first step (min_length 1), and each token already
    generated (never a prompt token) has its logit divided by `penalty` (multiplied when negative)."""
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    generated = []
    for step in range(steps):
        ids = torch.cat([inputs["input_ids"], torch.tensor([generated], dtype=torch.long)], dim=1)
        with torch.no_grad():
            scores = model(pixel_values=inputs["pixel_values"], qformer_input_ids=inputs["qformer_input_ids"],
                           qformer_attention_mask=inputs["qformer_attention_mask"], input_ids=ids,
                           attention_mask=torch.ones_like(ids)).logits[0, -1].clone()
        for token in set(generated):
            scores[token] = scores[token] * penalty if scores[token] < 0 else scores[token] / penalty
        if step == 0:
            scores[processor.tokenizer.eos_token_id] = -float("inf")
        generated.append(int(scores.argmax()))
        if generated[-1] == processor.tokenizer.eos_token_id:
            break
    return processor.tokenizer.decode(generated, skip_special_tokens=True).strip()


def test_release_generation_penalises_only_the_generated_tokens_as_lavis_does():
    model, processor = tiny_emovit("llama", seed=3)
    image, prompt = Image.new("RGB", (32, 32), (10, 120, 240)), categorical_instruction(MIKELS_EMOTIONS)
    ours = backbone_adapter(model, processor).generate([image], [prompt], 12, generated_repetition_penalty=5.0,
                                                       min_new_tokens=1)
    assert ours == [_lavis_greedy(model, processor, image, prompt, 12, 5.0)]


def test_release_generation_preset_sets_the_release_decoding():
    from evaluation.predictors import GeneratePredictor

    model, processor = tiny_emovit("llama")
    predictor = GeneratePredictor(backbone_adapter(model, processor),
                                  __import__("dataset_builder.emotions").emotions.get_label_space("emoset"), preset="release")
    assert predictor.max_new_tokens == 256
    assert predictor.options == {"num_beams": 1, "min_new_tokens": 1, "generated_repetition_penalty": 5.0}


def _release_answer_ids(tokenizer, answer, max_length):
    """The release's `blip2_vicuna_instruct.forward`: `llm_tokenizer([t + eos_token ...], truncation=True,
    max_length=max_output_txt_len)` with `truncation_side = 'right'`, then `input_ids[i][1:]` (the BOS dropped)."""
    tokenizer.truncation_side = "right"
    return tokenizer([answer + tokenizer.eos_token], truncation=True, max_length=max_length)["input_ids"][0][1:]


def test_release_mode_cuts_long_answers_as_the_release_tokenizer_call_did_and_the_default_keeps_the_eos():
    from emovit.training.collator import EmoVITCollator

    model, processor = tiny_emovit("llama")
    tokenizer, eos, limit = processor.tokenizer, processor.tokenizer.eos_token_id, 8
    answers = ["Predict emotion: awe" + " awe" * extra for extra in range(6)]
    lengths = {len(tokenizer(answer, add_special_tokens=False)["input_ids"]) for answer in answers}
    assert min(lengths) < limit - 1 <= max(lengths) and limit in lengths  # both sides of the cut
    release = [_release_answer_ids(tokenizer, answer, limit) for answer in answers]
    assert processor.encode_answers(answers, limit, release_truncation=True) == release
    default = processor.encode_answers(answers, limit)
    for ours, theirs in zip(default, release):
        assert ours == (theirs if theirs[-1] == eos else theirs + [eos])  # long answers: 7 tokens, then the eos
    assert sum(ids[-1] != eos for ids in release) >= 2 and all(ids[-1] == eos for ids in default)

    rows = [{"image": Image.new("RGB", (32, 32)), "prompt": "Q", "completion": answers[-1]}]
    for text_processor, expected in (("release", release[-1]), ("none", default[-1])):
        collator = EmoVITCollator(backbone_adapter(model, processor), max_completion_length=limit,
                                  text_processor=text_processor)
        labels = collator(rows)["labels"][0]
        assert labels[labels != -100].tolist() == expected


def test_release_truncation_leaves_t5_answers_as_lavis_t5_tokenizer_cuts_them():
    _, processor = tiny_emovit("t5")
    answers = ["Predict emotion: awe" + " awe" * extra for extra in range(6)]
    # LAVIS blip2_t5_instruct: t5_output_tokenizer(text_output, truncation=True, max_length=...): eos after the cut
    lavis = processor.tokenizer(answers, truncation=True, max_length=8)["input_ids"]
    assert processor.encode_answers(answers, 8, release_truncation=True) == processor.encode_answers(answers, 8) == lavis


def test_lavis_crop_resizes_only_the_cropped_pixels_as_torchvision_resized_crop_does():
    # torchvision `F.resized_crop` on a PIL image is `img.crop((left, top, left + w, top + h))` then
    # `img.resize(size, BICUBIC)`; RandomHorizontalFlip then draws `torch.rand(1) < 0.5`.
    generator = torch.Generator().manual_seed(0)
    noise = Image.frombytes("RGB", (96, 80), torch.randint(0, 256, (96 * 80 * 3,), dtype=torch.uint8,
                                                           generator=generator).numpy().tobytes())
    transform, resized_with_box_differs = LavisTrainTransform(size=32), 0
    for seed in range(12):
        torch.manual_seed(seed)
        ours = transform(noise)
        torch.manual_seed(seed)
        left, top, width, height = crop_box(96, 80)
        box = (left, top, left + width, top + height)
        reference = noise.crop(box).resize((32, 32), Image.Resampling.BICUBIC)
        if torch.rand(1).item() < 0.5:
            reference = reference.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        assert ours.tobytes() == reference.tobytes()
        resized_with_box_differs += noise.resize((32, 32), Image.Resampling.BICUBIC, box=box).tobytes() != reference.tobytes()
    assert resized_with_box_differs > 0  # reading pixels outside the box would fail the comparison above


@pytest.mark.parametrize("steps, warned", [(3, True), (4, True), (5, False)])
def test_a_lavis_schedule_that_ends_within_its_first_epoch_is_warned_about_once(steps, warned, tmp_path, caplog):
    from transformers import TrainingArguments

    from emovit.training.schedule import lavis_scheduler

    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-5, warmup_steps=2, num_train_epochs=4,
                             lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr": 1e-8}, use_cpu=True)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    with caplog.at_level("WARNING", logger="emovit.training.schedule"):
        scheduler = lavis_scheduler(args, optimizer, num_training_steps=steps, steps_per_epoch=4, warmup_start_lr=1e-8)
    messages = [record.getMessage() for record in caplog.records if record.name == "emovit.training.schedule"]
    assert messages == ([f"lr_schedule lavis: the run's {steps} optimizer steps end within its first epoch (4 steps), "
                         "where LAVIS only warms up, so the rate never decays (the cosine steps once per epoch); use "
                         "lr_schedule: transformers for a short run that decays."] if warned else [])
    for step in range(steps):
        scheduler.go_to(step)
    assert (scheduler.get_last_lr()[0] == pytest.approx(1e-5)) == warned  # epoch 0 ends at init_lr; epoch 1 has decayed


@pytest.mark.parametrize("key, valid", [("lr_schedule", "transformers, lavis"), ("augmentation", "none, lavis"),
                                        ("text_processor", "none, lavis, release")])
def test_an_unknown_release_protocol_value_is_refused_with_the_valid_ones(key, valid, tmp_path, capsys):
    code = sft.main(["--config", str(PAPER_RECIPE), *TINY_RUN, "--dataset_name", str(tmp_path),
                     "--output_dir", str(tmp_path / "out"), f"--{key}", "paper"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert f"--{key}" in error and "invalid choice: 'paper'" in error
    assert all(name in error.split("choose from", 1)[1] for name in valid.split(", "))
