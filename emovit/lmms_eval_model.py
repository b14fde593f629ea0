"""This package's model folders as an lmms-eval model: `lmms-eval --model emovit --model_args pretrained=FOLDER`.

Imported by lmms-eval only (it needs `lmms_eval`, the `emovit[lmms]` extra): setup.cfg registers `MANIFEST` in the
entry-point group `lmms_eval.models`, which lmms-eval's model registry loads at start-up
(`lmms_eval/models/registry_v2.py`, `load_entrypoint_manifests`; 0.7.3). The folder loads as `emovit eval` loads it
(`evaluation.harness.load_adapter`: EmoVIT, InstructBLIP, or any image-text-to-text model whose processor has a chat
template), behind this package's error boundary: a folder it cannot use stops lmms-eval with one sentence and exit
code 2 (lmms-eval itself would print a traceback and exit 0). Every request goes through the backbone adapter:
- `loglikelihood`: the candidate answers of one (image, instruction) are scored together by
  `answer_log_likelihoods`, images in batches of `batch_size`, in document order, as `emovit eval --mode rank`
  batches them; each answer's response is `(loss, is_greedy)` with loss its summed negative log-likelihood
  (lmms-eval's convention, lower is better) and is_greedy whether greedy decoding gives exactly that answer;
- `generate_until`: greedy answers from `generate`, `max_new_tokens` from the task's `generation_kwargs`, cut at the
  task's `until` strings.
"""

import json

from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest

from modeling_emovit.errors import EmoVITInputError

MANIFEST = ModelManifest(model_id="emovit", simple_class_path="emovit.lmms_eval_model.EmoVITLmms")
DEFAULT_MAX_NEW_TOKENS = 32  # when a generate_until task sets none


class EmoVITLmms(lmms):
    """`pretrained`: a model folder or Hub id; `batch_size`: images per forward; `device`: where the model runs
    (default: where `emovit eval` would run it). `max_batch_size`: lmms-eval passes it along with `--batch_size`;
    batches here are `batch_size`. One process: lmms-eval's data parallelism is not wired (rank 0 of 1)."""

    is_simple = True  # asked with the task's doc_to_text; the adapter applies a chat template itself where one exists

    def __init__(self, pretrained: str, batch_size: int | str = 8, device: str | None = None,
                 max_batch_size: int | None = None, **unknown) -> None:
        super().__init__()
        from .error_boundary import run_guarded

        code = run_guarded("lmms-eval --model emovit", lambda: self._load(pretrained, batch_size, device, unknown))
        if code:
            raise SystemExit(code)  # past lmms-eval's `except Exception`, which would go on and exit 0

    def _load(self, pretrained: str, batch_size, device: str | None, unknown: dict) -> None:
        if unknown:
            raise EmoVITInputError(f"--model_args {', '.join(sorted(unknown))}: the emovit model takes pretrained and "
                                   "batch_size (and lmms-eval's --device).")
        if not str(batch_size).isdigit() or int(batch_size) < 1:
            raise EmoVITInputError(f"--batch_size {batch_size}: the emovit model needs a whole number of images, at least 1.")
        import torch

        from evaluation.harness import load_adapter

        self.adapter = load_adapter(pretrained)
        accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else "cpu"
        self.adapter.model.to(device or accelerator)  # the accelerator `emovit eval` would use, else the CPU
        self.batch_size = int(batch_size)

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """One `(loss, is_greedy)` per request `(instruction, answer, doc_to_visual, doc_id, task, split)`."""
        groups = _by_document(requests)
        candidates = {key: tuple(requests[p].args[1] for p in positions) for key, positions in groups.items()}
        results: list = [None] * len(requests)
        for members in self._batches({key: (key[3], candidates[key]) for key in groups}):
            instruction, answers = members[0][3], list(candidates[members[0]])
            images = [self._image(requests[groups[key][0]]) for key in members]
            scores = self.adapter.answer_log_likelihoods(images, instruction, answers)
            greedy = self.adapter.generate(images, [instruction] * len(images), max(self.adapter.answer_lengths(answers)))
            for row, key in enumerate(members):
                for column, position in enumerate(groups[key]):
                    results[position] = (-float(scores[row, column]), greedy[row] == answers[column].strip())
        return results

    def generate_until(self, requests) -> list[str]:
        """One greedy answer per request `(instruction, generation_kwargs, doc_to_visual, doc_id, task, split)`."""
        groups = _by_document(requests)
        options = {key: requests[positions[0]].args[1] for key, positions in groups.items()}
        results: list = [None] * len(requests)
        for members in self._batches({key: (key[3], json.dumps(options[key], sort_keys=True, default=str))
                                      for key in groups}):
            instruction, settings = members[0][3], options[members[0]]
            images = [self._image(requests[groups[key][0]]) for key in members]
            answers = self.adapter.generate(images, [instruction] * len(images),
                                            settings.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
            for key, answer in zip(members, answers):
                for position in groups[key]:
                    results[position] = _cut_at(answer, settings.get("until"))
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("The emovit model answers one instruction per image; multi-round tasks need another model.")

    def _batches(self, shared: dict) -> list[list[tuple]]:
        """Document keys in document order, in runs of at most `batch_size` whose `shared` values (the instruction
        and the candidates, or the generation settings) are equal."""
        batches: list[list[tuple]] = []
        for key in sorted(shared, key=lambda key: key[:3]):
            if not batches or len(batches[-1]) == self.batch_size or shared[batches[-1][0]] != shared[key]:
                batches.append([])
            batches[-1].append(key)
        return batches

    def _image(self, request):
        """The one image of a request's document (`task_dict`: the datasets lmms-eval gives the model)."""
        _, _, doc_to_visual, doc_id, task, split = request.args[:6]
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        if len(visuals) != 1:
            raise EmoVITInputError(f"{task}: document {doc_id} has {len(visuals)} images; the emovit model reads one.")
        return visuals[0]


def _by_document(requests) -> dict[tuple, list[int]]:
    """Request positions by (task, split, doc_id, instruction): one image and question, with all its candidates."""
    groups: dict[tuple, list[int]] = {}
    for position, request in enumerate(requests):
        instruction, _, _, doc_id, task, split = request.args[:6]
        groups.setdefault((task, split, doc_id, instruction), []).append(position)
    return groups


def _cut_at(answer: str, stops: str | list[str] | None) -> str:
    """The answer up to the first of the task's stop strings (`until`: one string, a list, or none)."""
    for stop in [stops] if isinstance(stops, str) else stops or []:
        if stop and stop in answer:
            answer = answer[: answer.index(stop)]
    return answer
