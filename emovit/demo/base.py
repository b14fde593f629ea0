"""The demo's stand-in for a pretrained InstructBLIP: a tiny model briefly pretrained with all weights trainable.

EmoVIT starts from InstructBLIP, whose language model already knows language and whose Q-Former already speaks
to it; a random frozen LM cannot be steered into writing answers (measured: greedy generation stays at 0-58% on
the 8-class task). The stand-in learns two tasks on the train split, neither of which reveals an image's emotion:
- captioning ("Describe the image." -> the caption of what was drawn): vision, Q-Former and LM learn to talk;
- the answer format ("Predict emotion: <label>") with a random label that only the Q-Former's text input states
  ("the feeling is <label>"): the LM learns to read its answer from the query embeddings, as InstructBLIP's LM
  reads its Q-Former, while no label is tied to an image.
Measured with a plain loop (800 train / 200 test images, 300 EmoVIT steps): 98% in both rank and generate mode
(seed 0, 200 base steps); with the random label stated nowhere, as first tried, 80.5% in both (seed 1, 150 steps).
The EmoVIT stage has to make the Q-Former put the right emotion into the queries from pixels alone.
"""

import random

import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from dataset_builder.instructions import categorical_answer, categorical_instruction
from modeling_emovit.image_utils import open_image
from modeling_emovit.processing_emovit import EmoVITProcessor
from modeling_emovit.testing import tiny_emovit

CAPTION_PROMPT = "Describe the image."


def pretraining_examples(records, labels, seed: int) -> list[dict]:
    """One caption example and one random-label answer-format example per training record."""
    rng = random.Random(seed)
    instruction = categorical_instruction(labels)
    examples = []
    for record in records:
        examples.append({"image": record["image"], "prompt": CAPTION_PROMPT, "qformer_prompt": CAPTION_PROMPT,
                         "completion": record["caption"]})
        hint = rng.choice(labels)
        examples.append({"image": record["image"], "prompt": instruction,
                         "qformer_prompt": f"the feeling is {hint}. {instruction}", "completion": categorical_answer(hint)})
    return examples


def pretrain_base(records, labels, out_dir, steps: int = 200, batch_size: int = 32, seed: int = 0, corpus=()):
    """Builds the "small" tiny InstructBLIP, trains every weight on `pretraining_examples`, saves it to `out_dir`.

    `records`: dicts with an `image` (path or PIL) and a `caption`. Returns the list of training losses.
    """
    model, base_processor = tiny_emovit("llama", size="small", seed=seed, emotion_labels=labels, instructblip=True,
                                        corpus=list(corpus) + [r["caption"] for r in records])
    processor = EmoVITProcessor(base_processor.image_processor, base_processor.tokenizer,
                                base_processor.qformer_tokenizer, num_query_tokens=base_processor.num_query_tokens)
    examples = pretraining_examples(records, labels, seed)
    images = {id(e["image"]): open_image(e["image"]) for e in examples}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.05)
    schedule = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=max(1, steps // 10), num_training_steps=steps)
    rng, losses = random.Random(seed), []
    model.train()
    for _ in tqdm(range(steps), desc="pretraining the base model", unit="step"):
        batch = rng.sample(examples, min(batch_size, len(examples)))
        inputs = processor.build_training_inputs(
            [images[id(e["image"])] for e in batch], [e["prompt"] for e in batch], [e["completion"] for e in batch],
            qformer_prompts=[e["qformer_prompt"] for e in batch],
        )
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval().save_pretrained(out_dir)
    base_processor.save_pretrained(out_dir)
    return losses
