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
from .schedule import LavisLambdaLR, lavis_scheduler


class EmoVITSFTTrainer(ModelCardSFTTrainer):
    """`SFTTrainer` (writing the project's model card) whose loss is `transformers.Trainer.compute_loss` (the model's
    own `outputs.loss`).

    `lr_schedule="lavis"` replaces the stock scheduler by LAVIS `linear_warmup_cosine_lr` (`schedule.py`), warming up
    from `warmup_start_lr`, its rate set from the trainer's `global_step` before every step.
    """

    skipped_images: int = 0  # this rank's rows dropped by the collator so far

    def __init__(self, *args, lr_schedule: str = "transformers", warmup_start_lr: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_schedule, self.warmup_start_lr = lr_schedule, warmup_start_lr

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        created_here = self.lr_scheduler is None  # not one the caller passed in
        super().create_scheduler(num_training_steps, optimizer)  # also Trainer's bookkeeping for the next train()
        if self.lr_schedule == "lavis" and created_here:
            # optimizer steps per epoch, as the training loop counts them (`num_update_steps_per_epoch`)
            steps_per_epoch = self.set_initial_training_values(self.args, self.get_train_dataloader())[1]
            self.lr_scheduler = lavis_scheduler(
                self.args, optimizer or self.optimizer, num_training_steps, steps_per_epoch, self.warmup_start_lr
            )
        return self.lr_scheduler

    def training_step(self, model, inputs, num_items_in_batch=None):
        if isinstance(self.lr_scheduler, LavisLambdaLR):  # the rate of this step, whatever steps were skipped
            self.lr_scheduler.go_to(self.state.global_step)
        return super().training_step(model, inputs, num_items_in_batch)

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
