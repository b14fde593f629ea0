"""The release's learning-rate schedule, LAVIS `linear_warmup_cosine_lr`, as a torch `LambdaLR` for the trainer.

Flow: recipe (`lr_schedule: lavis`) -> `EmoVITSFTTrainer.create_scheduler` -> `lavis_scheduler`. LAVIS
(`lavis/common/optims.py`, `LinearWarmupCosineLRScheduler.step(cur_epoch, cur_step)`, called before every
iteration by `tasks/base_task.py`) sets one rate for all parameter groups:
- epoch 0: `min(init_lr, warmup_lr + (init_lr - warmup_lr) * step / max(warmup_steps, 1))`, `step` counted from 0
  within the epoch (a warmup longer than epoch 0 is cut short, as in LAVIS);
- epoch e >= 1: `min_lr + (init_lr - min_lr) * 0.5 * (1 + cos(pi * e / max_epoch))`, held for the whole epoch, so
  with 4 epochs the rate is 8.54e-6, 5.01e-6 and 1.47e-6 in epochs 1-3 (init 1e-5, min 1e-8) and never nears min_lr.
transformers has no registry for new `lr_scheduler_type` names, so the recipe keeps `lr_scheduler_type:
cosine_with_min_lr` (its `min_lr` is LAVIS's) and `lr_schedule: lavis` makes the trainer build this one instead.
LAVIS computes the rate from (epoch, iteration), and so does this scheduler, from the trainer's step count: a count
of `step()` calls would fall behind under fp16, since transformers skips `lr_scheduler.step()` after every optimizer
step the grad scaler skips.
"""

import logging
import math
import warnings
from dataclasses import dataclass

import torch

from modeling_emovit.errors import EmoVITInputError

logger = logging.getLogger(__name__)

SCHEDULES = ("transformers", "lavis")


@dataclass(frozen=True)
class LavisSchedule:
    """LAVIS `linear_warmup_cosine_lr`; `steps_per_epoch` counts optimizer steps."""

    init_lr: float
    min_lr: float
    warmup_start_lr: float
    warmup_steps: int
    epochs: int
    steps_per_epoch: int

    def learning_rate(self, step: int) -> float:
        """The rate of optimizer step `step` (0-based, over the whole run)."""
        epoch, step_in_epoch = divmod(step, max(self.steps_per_epoch, 1))
        if epoch == 0:
            rise = (self.init_lr - self.warmup_start_lr) * step_in_epoch / max(self.warmup_steps, 1)
            return min(self.init_lr, self.warmup_start_lr + rise)
        return self.min_lr + (self.init_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))

    def scheduler(self, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """A `LambdaLR` over `optimizer`, whose groups start at `init_lr` (the trainer's `learning_rate`)."""

        def factor(step: int) -> float:  # a plain function: LambdaLR leaves it out of its state dict
            return self.learning_rate(step) / self.init_lr

        return LavisLambdaLR(optimizer, factor)


class LavisLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """A `LambdaLR` whose step is set from outside: the trainer calls `go_to(global_step)` before every optimizer
    step, as LAVIS sets its rate before every iteration, including the steps after one the fp16 scaler skipped."""

    def go_to(self, step: int) -> None:
        """Sets the rate of optimizer step `step` (0-based over the run), unless it is set already."""
        if step == self.last_epoch:
            return
        self.last_epoch = step - 1
        with warnings.catch_warnings():
            # torch's warning for a `step()` before any `optimizer.step()`: here the scaler skipped the first steps
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.step()


def min_lr_of(args) -> float:
    """LAVIS `min_lr`, read from the recipe's `lr_scheduler_kwargs` for `lr_scheduler_type: cosine_with_min_lr`."""
    kwargs = args.lr_scheduler_kwargs or {}
    if str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)) != "cosine_with_min_lr" or not (
        "min_lr" in kwargs or "min_lr_rate" in kwargs
    ):
        raise EmoVITInputError(
            "lr_schedule: lavis reads LAVIS min_lr from `lr_scheduler_kwargs: {min_lr: ...}` with "
            "`lr_scheduler_type: cosine_with_min_lr` (the closest stock schedule); set both in the recipe."
        )
    return float(kwargs["min_lr"]) if "min_lr" in kwargs else float(kwargs["min_lr_rate"]) * args.learning_rate


def lavis_scheduler(args, optimizer, num_training_steps: int, steps_per_epoch: int, warmup_start_lr: float):
    """The LAVIS schedule for a run of `args` (TrainingArguments): `learning_rate` is LAVIS `init_lr`,
    `warmup_steps` its warmup (a fraction of `num_training_steps` when below 1), `num_train_epochs` its `max_epoch`.

    A run that ends within its first epoch is warned about, not refused: it never decays, exactly as LAVIS would
    not, and short runs of the paper recipe (`--max_steps`) are how it is smoke-tested."""
    if num_training_steps <= steps_per_epoch:
        logger.warning(
            "lr_schedule lavis: the run's %d optimizer steps end within its first epoch (%d steps), where LAVIS only "
            "warms up, so the rate never decays (the cosine steps once per epoch); use lr_schedule: transformers "
            "for a short run that decays.", num_training_steps, steps_per_epoch,
        )
    schedule = LavisSchedule(
        init_lr=args.learning_rate,
        min_lr=min_lr_of(args),
        warmup_start_lr=warmup_start_lr,
        warmup_steps=args.get_warmup_steps(num_training_steps),
        epochs=math.ceil(args.num_train_epochs),
        steps_per_epoch=steps_per_epoch,
    )
    return schedule.scheduler(optimizer)
