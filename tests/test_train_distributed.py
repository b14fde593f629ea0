"""Real multi-process launches of recipes/sft.py on CPU: 2-rank DDP over gloo and DeepSpeed ZeRO-2."""

import json
import os

import pytest
from train_helpers import CPU_DDP, REPO, run_sft, save_tiny_emovit, write_dataset

ZERO2 = REPO / "recipes" / "accelerate_configs" / "zero2.yaml"
# Every rank loads the same saved model (a `tiny-random` name would be built once per rank).
TINY = ["--max_steps", 2, "--save_strategy", "no", "--logging_steps", 1]


def test_two_process_cpu_ddp_run_finishes_and_loads_with_from_pretrained(tmp_path):
    from transformers import AutoModelForImageTextToText

    data = write_dataset(tmp_path / "ddp-data", rows=16)
    base = save_tiny_emovit(tmp_path / "base")
    done = run_sft(*TINY, "--model_name_or_path", base, "--dataset_name", data, "--output_dir", tmp_path / "out",
                   launcher=CPU_DDP)
    assert done.returncode == 0, done.stderr[-3000:]
    # 16 rows, batch 8 per rank: with 2 real ranks one step is one epoch (one process would reach epoch 1.0)
    assert json.loads((tmp_path / "out" / "train_results.json").read_text())["epoch"] == 2.0
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "out", trust_remote_code=True)
    assert model.config.model_type == "emovit"


@pytest.mark.slow
def test_zero2_run_on_cpu_finishes(tmp_path):
    # Build DeepSpeed's CPU communication op once, here, so the two ranks do not both compile it (about 40 s).
    from deepspeed.ops.op_builder.cpu.comm import ShareMemCommBuilder

    ShareMemCommBuilder().load()
    data = write_dataset(tmp_path / "zero2-data", rows=16)
    base = save_tiny_emovit(tmp_path / "base")
    done = run_sft(
        *TINY, "--model_name_or_path", base, "--dataset_name", data, "--output_dir", tmp_path / "out", "--use_cpu", "true",
        launcher=ZERO2, launch_args=["--num_processes", "2", "--mixed_precision", "no"],
        env={"TORCH_EXTENSIONS_DIR": os.environ["TORCH_EXTENSIONS_DIR"]}, timeout=420,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "model.safetensors").is_file()
