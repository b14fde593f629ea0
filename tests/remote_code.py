"""The start of a Python snippet that must run where the emovit packages cannot be imported: what a saved model
folder does with `trust_remote_code=True` for someone who never installed emovit."""

WITHOUT_EMOVIT = """
import importlib.abc, sys
class BlockProjectPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"modeling_emovit", "emovit", "dataset_builder", "evaluation"}:
            raise ImportError("the emovit package must not be importable here: " + name)
sys.meta_path.insert(0, BlockProjectPackages())
"""
