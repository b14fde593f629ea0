"""Launch guard for recipes/sft.py: the CPU default on a machine without an accelerator, and a refusal of a launch
whose processes disagree on how many ranks there are.

transformers 5.24 refuses `bf16` (SFTConfig's default) without a GPU unless `use_cpu` is set, so a recipe written for
GPUs would need `--use_cpu true` on a laptop: `cpu_default` makes true the default there (the recipe and the command
line still decide). Without the guard, two failures are silent (accelerate 1.15, DeepSpeed 0.19 on CPU): DeepSpeed on
a CPU machine without `use_cpu` makes accelerate see one process while DeepSpeed sees several, and every rank trains
on the whole dataset; a launcher that starts fewer processes than the config asks for trains on one rank.
"""

import logging
import os

import torch
from modeling_emovit.errors import EmoVITInputError

from .recipe_files import recipe_file

logger = logging.getLogger(__name__)


def _launch_hint(config: str) -> str:
    """The launch command with an installed accelerate config, e.g. "cpu_ddp" (a path that works from anywhere)."""
    return f"accelerate launch --config_file {recipe_file(f'accelerate_configs/{config}.yaml')} -m emovit train sft ..."


def has_accelerator() -> bool:
    """Whether torch sees a GPU or another accelerator (CUDA, ROCm, MPS, XPU, ...), or transformers an XLA device."""
    from transformers.utils import is_torch_xla_available

    return torch.accelerator.is_available() or is_torch_xla_available()


def cpu_default() -> dict:
    """Parser defaults for this machine: `use_cpu: true` where there is no accelerator (a recipe or flag may say
    otherwise), nothing elsewhere."""
    return {} if has_accelerator() else {"use_cpu": True}


def _uses_deepspeed(training_args) -> bool:
    return bool(training_args.deepspeed) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


def check_launch(training_args) -> None:
    """Raises `EmoVITInputError` unless accelerate, DeepSpeed and the launcher agree on the process count."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ:
        # accelerate's MULTI_CPU mode (`--cpu --num_processes N`, N > 1) sets up a rendezvous, then starts one
        # process and expects MPI to start the others.
        raise EmoVITInputError(
            f"accelerate was asked for several CPU processes but started one (its --cpu mode needs MPI); start real "
            f"ranks with `{_launch_hint('cpu_ddp')}`."
        )
    if _uses_deepspeed(training_args):
        if launched == 1 and "LOCAL_RANK" not in os.environ:
            raise EmoVITInputError(
                f"DeepSpeed needs a launcher that starts the ranks: run `{_launch_hint('zero2')}` (or torchrun), not "
                f"a single process."
            )
        if not has_accelerator() and not training_args.use_cpu:
            raise EmoVITInputError(
                f"DeepSpeed on a machine without a GPU needs `use_cpu: true` (the default there, which the recipe or "
                f"the command line turned off); otherwise accelerate sees 1 process while DeepSpeed sees {launched}, and every rank trains on the "
                f"whole dataset."
            )
    seen = training_args.distributed_state.num_processes
    if seen != launched:
        raise EmoVITInputError(
            f"The launcher started {launched} process(es) but accelerate sees {seen}; on CPU start real ranks with "
            f"`{_launch_hint('cpu_ddp')}`."
        )
    if training_args.use_cpu and not has_accelerator() and training_args.process_index == 0:
        logger.warning("No GPU or other accelerator found: training on the CPU (use_cpu: true).")
