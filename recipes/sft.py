"""Supervised instruction tuning of EmoVIT (or another vision-language model) on emotion instruction data.

    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml recipes/sft.py \
        --config recipes/emovit-vicuna-7b/sft.yaml

Any recipe key can be overridden on the command line (`--output_dir OUT --max_steps 10`); recipes/README.md pairs
each recipe with its command. The script is `emovit.training.sft` (installed with the package), so
`accelerate launch -m emovit.training.sft --config ...` does the same from anywhere.
"""

import sys

from emovit.training.sft import main

if __name__ == "__main__":
    sys.exit(main())
