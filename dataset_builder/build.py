"""`build_dataset`: one split of a source -> `out/<config>/<split>-*.parquet`, the dataset card and build_report.json.

Flow: source -> manifests (read once) -> one `EmoVITInstructBuilder` run per config -> shards moved into `out` ->
card. The output folder loads with `load_dataset(out)` / `load_dataset(out, "categorical")`, locally or from the Hub.
"""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from .builder import EmoVITInstructBuilder
from .card import write_dataset_card
from .manifests import write_manifests
from .mix import MIXES, release_mix
from .report import BuildReport
from .schema import CONFIGS, GENERATED_TASKS, MESSAGES_CONFIG, TASKS
from .sources import get_source

LOCK_FILE = ".emovit-build.lock"  # held by the build writing `out`
WORK_PREFIX = ".emovit-build-"  # a build's work folder inside `out`, removed when it ends (or by the next build)


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


def _build_config(name, tasks, manifests, split, work: Path, num_proc: int, seed, paraphrases, report_dir):
    builder = EmoVITInstructBuilder(
        config_name=name,
        cache_dir=str(work / "cache"),
        tasks=tasks if name in ("all", MESSAGES_CONFIG) else (name,),
        split=split,
        manifests=tuple(manifests),
        seed=seed,
        paraphrases=paraphrases,
        report_dir=report_dir,
    )
    builder.download_and_prepare(
        output_dir=str(work / "parquet" / name), file_format="parquet", num_proc=num_proc if num_proc > 1 else None
    )
    return builder.info.splits[split].num_examples


def _publish(work: Path, out: Path, name: str, split: str, rows: int) -> None:
    """Moves one config's new shards of `split` from the work folder into `out`, replacing the earlier ones; an
    empty split is neither written nor listed."""
    shards = sorted((work / "parquet" / name).glob("*.parquet")) if rows else []
    target = out / name
    _remove_shards(out, name, split)
    for number, shard in enumerate(shards):
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(str(shard), target / f"{split}-{number:05d}-of-{len(shards):05d}.parquet")


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
        with _lock_file(out / LOCK_FILE):
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


@contextlib.contextmanager
def _lock_file(path: Path):
    """An exclusive `flock` on `path` (created), or one sentence when another build holds it; the file is removed
    before the lock is released, and a lock taken on a file removed meanwhile counts as held by another build."""
    try:
        import fcntl
    except ImportError:  # not POSIX: builds are not locked against each other
        yield
        return
    busy = EmoVITInputError(
        f"{path.parent}: another `emovit data build` is writing this folder now; wait for it, or pass another --out."
    )
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        if not path.exists() or os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
            raise busy
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


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
) -> BuildReport:
    """Builds one split of a source into `out` (Parquet per config, README.md card, build_report.json).

    Conversation and reasoning rows come from `generations` (or from the source itself for EmoVIT JSON); without
    them only categorical data is built. `paraphrases=True` picks a categorical template per record from `seed`
    (otherwise EmoVIT's template for every record). `mix="release"` keeps the original release's images and tasks
    per image (`dataset_builder.mix`; EmoSet's train split). Rebuilding a split replaces its shards in every config,
    so a config this build leaves out loses that split. Image paths leading outside `root` are skipped and counted
    unless `allow_outside_root`. Returns the report; skipped items are counted, never silent.

    The build works in a folder inside `out` and holds a lock file there (a second build into `out` is refused);
    `out` changes only once every config is built, and a build that fails leaves it as it was (a folder it
    created is removed). A split in which no image could be read is refused.
    """
    report = BuildReport(source=source, split=split)
    has_generations = generations is not None or get_source(source).generations is not None
    tasks = _check_tasks(tasks, has_generations, report)
    chosen = _mix(mix, source, root, split)
    out = Path(out)
    with _locked_work_folder(out) as work:
        manifests = write_manifests(
            source, root, split, generations, tasks, report, work / "manifests", max(1, num_proc), skip_unknown,
            mix=chosen, allow_outside_root=allow_outside_root,
        )
        eligible = {task: _images_given(task, manifests) for task in GENERATED_TASKS}
        report_dir = work / "reports"
        report_dir.mkdir()
        # With one task, `all` holds exactly that task's rows: its shards are copied rather than written again.
        names = [*tasks, MESSAGES_CONFIG] if len(tasks) == 1 else ["all", *tasks, MESSAGES_CONFIG]
        for name in names:  # the first one reports, and decodes each image for the others (images.CheckedImages)
            report.rows[name] = _build_config(
                name, tasks, manifests, split, work, num_proc, seed, paraphrases,
                str(report_dir) if name == names[0] else None,
            )
        if len(tasks) == 1:
            shutil.copytree(work / "parquet" / tasks[0], work / "parquet" / "all")
            report.rows = {"all": report.rows[tasks[0]], **report.rows}
        for path in sorted(report_dir.glob("*.json")):
            report.merge(json.loads(path.read_text()))
        if report.records == 0:
            raise EmoVITInputError(
                f"{root}: no image of split {split!r} could be read ({report.skipped_summary()}); {out} was left as "
                "it was."
            )
        for name, rows in report.rows.items():
            _publish(work, out, name, split, rows)
        for name in CONFIGS:
            if name not in report.rows:  # a config this build leaves out must not keep an earlier build's rows
                _remove_shards(out, name, split)
        for task in GENERATED_TASKS:
            if task in tasks:
                images = report.records if eligible[task] is None else eligible[task]
                report.without_generations[task] = images - _images_with(task, out, split)
        write_dataset_card(out, report)
    return report


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


def _images_with(task: str, out: Path, split: str) -> int:
    """Distinct image ids among the rows of one task's config."""
    import pyarrow.parquet as pq

    ids = set()
    for shard in sorted((out / task).glob(f"{split}-*.parquet")):
        ids.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
    return len(ids)
