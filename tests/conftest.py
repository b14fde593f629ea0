"""Suite-wide isolation: caches in temporary folders, no Hub traffic, CPU only. Runs before any test imports."""

import os
import sys
import tempfile
from pathlib import Path

_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="emovit-tests-"))
for variable, folder in {
    "HF_HOME": "hf",
    "HF_DATASETS_CACHE": "datasets",
    "TORCH_EXTENSIONS_DIR": "torch_extensions",
    "MPLCONFIGDIR": "matplotlib",
}.items():
    os.environ[variable] = str(_CACHE_ROOT / folder)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("OPENAI_API_KEY", None)
sys.path.insert(0, str(Path(__file__).parent))
