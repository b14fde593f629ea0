"""Real multi-process launches of recipes/sft.py on CPU: 2-rank DDP over gloo and DeepSpeed ZeRO-2."""

import os

import pytest
from train_helpers import CPU_DDP, REPO, run_sft, write_dataset

ZERO2 = REPO / "recipes" / "accelerate_configs" / "zero2.yaml"
TINY = ["--model_name_or_path", "tiny-random", "--max_steps", 2, "--save_strategy", "no", "--logging_steps", 1]


def test_two_process_cpu_ddp_run_finishes_and_loads_with_from_pretrained(tmp_path):
    from transformers import AutoModelForImageTextToText

    data = write_dataset(tmp_path / "ddp-data", rows=16)
    done = run_sft(*TINY, "--dataset_name", data, "--output_dir", tmp_path / "out", launcher=CPU_DDP)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("train_samples_per_second =") == 2  # both ranks trained
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "out", trust_remote_code=True)
    assert model.config.model_type == "emovit"


@pytest.mark.slow
def test_zero2_run_on_cpu_finishes(tmp_path):
    # Build DeepSpeed's CPU communication op once, here, so the two ranks do not both compile it (about 40 s).
    from deepspeed.ops.op_builder.cpu.comm import ShareMemCommBuilder

    ShareMemCommBuilder().load()
    data = write_dataset(tmp_path / "zero2-data", rows=16)
    done = run_sft(
        *TINY, "--dataset_name", data, "--output_dir", tmp_path / "out", "--use_cpu", "true",
        launcher=ZERO2, launch_args=["--num_processes", "2", "--mixed_precision", "no"],
        env={"TORCH_EXTENSIONS_DIR": os.environ["TORCH_EXTENSIONS_DIR"]}, timeout=420,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "model.safetensors").is_file()
