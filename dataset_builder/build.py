"""`build_dataset`: one split of a source -> Parquet shards, the dataset card and build_report.json in `out`.

Flow: source -> manifests (read once) -> `EmoVITInstructBuilder` (Arrow) -> `shards.write_parquet_shards` -> shards
moved into `out` -> duplicate images found (`duplicates.py`) -> card. Every instruction row of the split is written
once: into `out/all/` when the build has several tasks (each task's config reads those files through a `task` filter
in the card), or into `out/<task>/` for a single task (which `all` then reads too); an image's rows share its stored
bytes. `out/messages/` holds one conversation per image, written when asked or when an image has several
instructions. The folder loads with `load_dataset(out)` / `load_dataset(out, "categorical")`, locally or from the Hub.
"""

import contextlib
import errno
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from .builder import EmoVITInstructBuilder
from .card import REPORT_FILE, write_dataset_card
from .duplicates import find_duplicates
from .manifests import Manifests, write_manifests
from .mix import MIXES, release_mix
from .output_lock import exclusive_lock
from .report import BuildReport
from .schema import CONFIGS, GENERATED_TASKS, MESSAGES_CONFIG, TASKS
from .shards import ShardStats, write_parquet_shards
from .sources import get_source, label_space_for

LOCK_FILE = ".emovit-build.lock"  # held by the build writing `out`
WORK_PREFIX = ".emovit-build-"  # a build's work folder inside `out`, removed when it ends (or by the next build)
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota, file-size limit (`ulimit -f`)
MESSAGES_LEFT_OUT = "config left out: one instruction per image, the prompt/completion rows hold it (--messages writes it)"


def _check_tasks(tasks, has_generations: bool, report: BuildReport) -> tuple[str, ...]:
    tasks = tuple(tasks)
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or not tasks:
        raise EmoVITInputError(f"--tasks {','.join(tasks)}: use one or more of {', '.join(TASKS)}.")
    if not has_generations:
        for task in tasks:
            if task in GENERATED_TASKS:
                report.note("task left out: no --generations file given", task)
        tasks = tuple(task for task in tasks if task not in GENERATED_TASKS)
        if not tasks:
            raise EmoVITInputError(
                "Conversation and reasoning data need --generations FILE (from `emovit data generate`)."
            )
    return tasks


@dataclass
class _Run:
    """What every builder run of one build shares."""

    tasks: tuple[str, ...]
    manifests: Manifests
    split: str
    work: Path
    num_proc: int
    seed: int
    paraphrases: bool


def _build_rows(name: str, run: _Run, report_dir: str | None) -> ShardStats:
    """One builder run (`all`: every instruction row; `messages`: one conversation per image) -> Parquet shards in
    `work/parquet/<name>/`."""
    builder = EmoVITInstructBuilder(
        config_name=name,
        cache_dir=str(run.work / "cache"),
        tasks=run.tasks,
        split=run.split,
        manifests=tuple(run.manifests.paths),
        seed=run.seed,
        paraphrases=run.paraphrases,
        report_dir=report_dir,
        label_spaces=tuple(run.manifests.label_spaces.items()),
        labels=run.manifests.labels,
    )
    arrow = run.work / "arrow" / name
    builder.download_and_prepare(
        output_dir=str(arrow), file_format="arrow", num_proc=run.num_proc if run.num_proc > 1 else None
    )
    _, stats = write_parquet_shards(sorted(arrow.glob("*.arrow")), run.work / "parquet" / name, run.split)
    shutil.rmtree(arrow)
    return stats


def _publish(work: Path, out: Path, name: str, folder: str, split: str) -> None:
    """Moves one builder run's shards of `split` from the work folder into `out/<folder>/`."""
    for shard in sorted((work / "parquet" / name).glob("*.parquet")):
        (out / folder).mkdir(parents=True, exist_ok=True)
        shutil.move(str(shard), out / folder / shard.name)


def _remove_shards(out: Path, name: str, split: str) -> None:
    """Deletes one config's shards of `split` from an earlier build (its other splits stay; an emptied folder goes)."""
    for old in (out / name).glob(f"{split}-*.parquet"):
        old.unlink()
    if (out / name).is_dir() and not any((out / name).iterdir()):
        (out / name).rmdir()


@contextlib.contextmanager
def _locked_work_folder(out: Path):
    """A work folder inside `out`, while `out/.emovit-build.lock` is held: a second build into `out` is refused,
    and the kernel releases the lock when the process ends, even by kill -9. Work folders of builds that died are
    removed first; a build that fails removes `out` if it created it. The lock file goes when the build ends."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive_lock(out / LOCK_FILE, f"{out}: another `emovit data build` is writing this folder now; wait "
                                             f"for it, or pass another --out."):
            for stale in out.glob(f"{WORK_PREFIX}*"):
                shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=out))
            try:
                yield work
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def build_dataset(
    source: str,
    root,
    split: str,
    out,
    generations=None,
    tasks=TASKS,
    num_proc: int = 1,
    skip_unknown: bool = False,
    seed: int = 42,
    paraphrases: bool = False,
    mix: str | None = None,
    allow_outside_root: bool = False,
    labels=None,
    label_space: str | None = None,
    messages: bool | None = None,
) -> BuildReport:
    """Builds one split of a source into `out` (Parquet per config, README.md card, build_report.json).

    Conversation and reasoning rows come from `generations` (or from the source itself for EmoVIT JSON); without
    them only categorical data is built. `paraphrases=True` picks a categorical template per record from `seed`
    (otherwise EmoVIT's template for every record). `mix="release"` keeps the original release's images and tasks
    per image (`dataset_builder.mix`; EmoSet's train split). `labels` (with `label_space` as its name) define the
    label space, as an image folder's class folders do; `label_space` alone picks a built-in one
    (`sources.label_space_for`). `messages`: write the `messages` config (None: when an image has several
    instructions). Split `all` (every image, for datasets without splits) is written as `train`. Rebuilding a split
    replaces its shards in every config, so a config this build leaves out loses that split. Image paths leading
    outside `root` are skipped and counted unless `allow_outside_root`. Returns the report; skipped items are
    counted, never silent, and byte-identical images are reported (`duplicates`).

    The build works in a folder inside `out` and holds a lock file there (a second build into `out` is refused);
    `out` changes only once every config is built, and a build that fails leaves it as it was (a folder it
    created is removed). A split in which no image could be read is refused, as is one whose labels differ from
    those of the other splits in `out`; a disk that fills up is one sentence.
    """
    source_split, split = split, written_split(split)
    report = BuildReport(source=source, split=split)
    has_generations = generations is not None or get_source(source).generations is not None
    tasks = _check_tasks(tasks, has_generations, report)
    chosen = _mix(mix, source, root, source_split)
    space = label_space_for(source, root, source_split, label_space, labels)
    out = Path(out)
    with _out_of_space_is_one_sentence(out), _locked_work_folder(out) as work:
        manifests = write_manifests(
            source, root, source_split, generations, tasks, report, work / "manifests", max(1, num_proc), skip_unknown,
            mix=chosen, allow_outside_root=allow_outside_root, label_space=space,
        )
        report.labels = list(manifests.labels)
        _check_labels_match(out, split, report.labels)
        _write_rows(_Run(tasks, manifests, split, work, num_proc, seed, paraphrases), report, messages)
        if report.records == 0:
            raise EmoVITInputError(
                f"{root}: no image of split {source_split!r} could be read ({report.skipped_summary()}); {out} was left "
                "as it was."
            )
        _publish_split(work, out, split, tasks, report)
    return report


def _publish_split(work: Path, out: Path, split: str, tasks, report: BuildReport) -> None:
    """The built split's shards replace its earlier ones in `out` (whatever layout the earlier build had), then the
    card and report are written again, with the duplicates across `out`'s splits."""
    for name in CONFIGS:
        _remove_shards(out, name, split)
    _publish(work, out, "all", tasks[0] if len(tasks) == 1 else "all", split)
    _publish(work, out, MESSAGES_CONFIG, MESSAGES_CONFIG, split)
    write_dataset_card(out, report, find_duplicates(out, _splits_in(out, split)))


def written_split(split: str) -> str:
    """The split name a source split is written under: `all` (every image of a dataset without splits) becomes
    `train`, datasets' name for a dataset's only split (it reserves `all` for the union of the splits)."""
    return "train" if split == "all" else split


def _write_rows(run: _Run, report: BuildReport, messages: bool | None) -> None:
    """Writes the split's instruction rows (and its conversations when wanted), filling the report's counts."""
    report_dir = run.work / "reports"
    report_dir.mkdir()
    eligible = {task: _images_given(task, run.manifests.paths) for task in GENERATED_TASKS}
    stats = _build_rows("all", run, str(report_dir))  # decodes each image once, for the messages run too
    for path in sorted(report_dir.glob("*.json")):
        report.merge(json.loads(path.read_text()))
    report.rows = {"all": sum(stats.rows.values()), **{task: stats.rows.get(task, 0) for task in run.tasks}}
    report.arrow_bytes = {"all": sum(stats.arrow_bytes.values()),
                          **{task: stats.arrow_bytes.get(task, 0) for task in run.tasks}}
    for task in GENERATED_TASKS:
        if task in run.tasks:
            images = report.records if eligible[task] is None else eligible[task]
            report.without_generations[task] = images - len(stats.images.get(task, ()))
    several = report.rows["all"] > report.records  # some image has more than one instruction: a real conversation
    if messages is None and not several:
        report.note(MESSAGES_LEFT_OUT, MESSAGES_CONFIG)
    if report.records and (messages if messages is not None else several):
        chats = _build_rows(MESSAGES_CONFIG, run, None)
        report.rows[MESSAGES_CONFIG] = chats.rows.get(None, 0)
        report.arrow_bytes[MESSAGES_CONFIG] = chats.arrow_bytes.get(None, 0)


def _splits_in(out: Path, split: str) -> list[str]:
    """The splits `out` holds once this build's `split` is added (from its build report)."""
    path = out / REPORT_FILE
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    return sorted({*earlier, split})


def _check_labels_match(out: Path, split: str, labels: list[str]) -> None:
    """Refuses a split whose `label` names differ from those of the other splits already built into `out` (their
    rows would be read with the wrong names)."""
    path = out / REPORT_FILE
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    for other, report in sorted(earlier.items()):
        if other != split and report.get("labels") != labels:
            given = ", ".join(report["labels"]) if report.get("labels") else "none: built by an earlier version"
            raise EmoVITInputError(
                f"{out}: its split {other!r} has the labels ({given}), this build of {split!r} has "
                f"({', '.join(labels)}); one dataset has one label space: pass another --out (or rebuild {other!r})."
            )


@contextlib.contextmanager
def _out_of_space_is_one_sentence(out: Path):
    """A full disk, a quota or a file-size limit met anywhere in the build (datasets wraps it in a
    DatasetGenerationError) becomes one sentence naming `out`."""
    try:
        yield
    except Exception as error:
        full = _out_of_space(error)
        if full is None:
            raise
        raise EmoVITInputError(
            f"{out}: the build ran out of space ({full.strerror}); its work files were removed: free some space (a "
            "build needs about twice its images' size while it runs), or pass an --out on another disk, and build "
            "again."
        ) from None


def _out_of_space(error: BaseException) -> OSError | None:
    """The OSError for a full disk (or quota, or file-size limit) in `error` or what caused it, if any."""
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, OSError) and error.errno in _OUT_OF_SPACE:
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _mix(name: str | None, source: str, root, split: str) -> dict | None:
    """image id -> tasks for a named mix (None: every image gets every task)."""
    if name is None:
        return None
    if name not in MIXES or source != "emoset":
        raise EmoVITInputError(f"--mix {name}: the only mix is 'release', for --source emoset (EmoSet's train split).")
    return release_mix(root, split)


def _images_given(task: str, manifests: list[str]) -> int | None:
    """Images whose manifest line limits their tasks and includes `task`; None when no line limits its tasks."""
    limited, given = False, 0
    for manifest in manifests:
        with open(manifest, encoding="utf-8") as handle:
            for line in handle:
                tasks = json.loads(line).get("tasks")
                limited |= tasks is not None
                given += tasks is None or task in tasks
    return given if limited else None
