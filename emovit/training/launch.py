"""Launch guard for recipes/sft.py: refuses a launch whose processes disagree on how many ranks there are.

Without it, two failures are silent (accelerate 1.15, DeepSpeed 0.19 on CPU): DeepSpeed on a CPU
machine without `use_cpu` makes accelerate see one process while DeepSpeed sees several, and every rank trains on
the whole dataset; a launcher that starts fewer processes than the config asks for trains on one rank.
"""

import os

import torch
from modeling_emovit.errors import EmoVITInputError

CPU_DDP_HINT = "accelerate launch --config_file recipes/accelerate_configs/cpu_ddp.yaml"


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
            f"ranks with `{CPU_DDP_HINT}`."
        )
    if _uses_deepspeed(training_args):
        if launched == 1 and "LOCAL_RANK" not in os.environ:
            raise EmoVITInputError(
                "DeepSpeed needs a launcher that starts the ranks: run `accelerate launch --config_file "
                "recipes/accelerate_configs/zero2.yaml recipes/sft.py ...` (or torchrun), not `python recipes/sft.py`."
            )
        if not torch.cuda.is_available() and not training_args.use_cpu:
            raise EmoVITInputError(
                f"DeepSpeed on a machine without a GPU needs `use_cpu: true` in the recipe (or `--use_cpu true`); "
                f"otherwise accelerate sees 1 process while DeepSpeed sees {launched}, and every rank trains on the "
                f"whole dataset."
            )
    seen = training_args.distributed_state.num_processes
    if seen != launched:
        raise EmoVITInputError(
            f"The launcher started {launched} process(es) but accelerate sees {seen}; on CPU start real ranks with "
            f"`{CPU_DDP_HINT}`."
        )
