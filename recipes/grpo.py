"""Emotion reasoning with verifiable rewards: a cold-start SFT stage on the reasoning format, then TRL's GRPO.

    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml recipes/grpo.py \
        --config recipes/qwen2.5-vl-3b/grpo.yaml

Any recipe key can be overridden on the command line (`--output_dir OUT --max_steps 10`); recipes/README.md pairs
each recipe with its command. The script is `emovit.training.grpo` (installed with the package), so
`accelerate launch -m emovit.training.grpo --config ...` and `emovit train grpo --config ...` do the same.
"""

import sys

from emovit.training.grpo import main

if __name__ == "__main__":
    sys.exit(main())
