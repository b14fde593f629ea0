"""The trainer of recipes/sft.py: TRL's `SFTTrainer` with the model's own loss, plus the skipped-image count in logs.

Flow: collator -> this trainer -> checkpoint. TRL 1.16's `SFTTrainer.compute_loss` always runs a fused LM-head
loss that reads `last_hidden_state` (which the InstructBLIP output lacks) and assumes decoder-only labels, and no
setting turns it off; EmoVIT's forward already returns the causal-LM cross-entropy over the answer tokens (LAVIS
`blip2_vicuna_instruct.forward`), so the loss is `transformers.Trainer.compute_loss` (a test pins the TRL behaviour).
The collator reports each batch's skipped images inside the batch (it may run in dataloader worker processes,
each with its own copy of it); the trainer takes the count out before the forward and adds it up.
"""

import torch
from transformers import Trainer

from .card import ModelCardSFTTrainer
from .collator import SKIPPED_IMAGES


class EmoVITSFTTrainer(ModelCardSFTTrainer):
    """`SFTTrainer` (writing the project's model card) whose loss is `transformers.Trainer.compute_loss` (the model's own
    `outputs.loss`)."""

    skipped_images: int = 0  # this rank's rows dropped by the collator so far

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.skipped_images += inputs.pop(SKIPPED_IMAGES, 0)
        return Trainer.compute_loss(
            self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds `skipped_images` (summed over ranks); every rank calls `log`."""
        total = self.accelerator.reduce(torch.tensor(self.skipped_images, device=self.args.device), reduction="sum")
        logs["skipped_images"] = int(total.item())
        super().log(logs, start_time)
