"""Byte-identical images in a built dataset folder: within one split, under different labels, and across splits
(train/test leakage), from the `image_sha256` column every row carries (`images.image_digest`).

Flow: `build_dataset` publishes a split's shards -> `find_duplicates` reads the id, hash and emotion columns of
every split in the folder -> each split's report gets its `duplicates` -> build_report.json, the card, the summary.
Splits built by an earlier version (no `image_sha256` column) are left out of the comparison.
"""

from pathlib import Path

from .card import instruction_folder

_EXAMPLES = 20


def _split_images(out: Path, split: str) -> dict[str, tuple[str, str]]:
    """image id -> (content hash, emotion) over one split's instruction rows; {} without an `image_sha256` column."""
    import pyarrow.parquet as pq

    folder = instruction_folder(out, split)
    images: dict[str, tuple[str, str]] = {}
    for shard in sorted((out / folder).glob(f"{split}-*.parquet")) if folder else ():
        if "image_sha256" not in pq.read_schema(shard).names:
            return {}
        table = pq.read_table(shard, columns=["id", "image_sha256", "emotion"])
        hashes = zip(table["image_sha256"].to_pylist(), table["emotion"].to_pylist())
        images.update(zip(table["id"].to_pylist(), hashes))
    return images


def _twins(images: dict[str, tuple[str, str]], others: dict[str, tuple[str, str]], same_split: bool) -> dict:
    """The images of `images` with a byte-identical image in `others` (another id when both are one split), and
    those of them with such a twin labelled otherwise: {"images", "examples"} for each."""
    by_hash: dict[str, list[tuple[str, str]]] = {}
    for image_id, (digest, emotion) in others.items():
        by_hash.setdefault(digest, []).append((image_id, emotion))
    shared, relabelled = {"images": 0, "examples": []}, {"images": 0, "examples": []}
    for image_id, (digest, emotion) in images.items():
        twins = [twin for twin in by_hash.get(digest, ()) if not (same_split and twin[0] == image_id)]
        if not twins:
            continue
        for kind, wanted in ((shared, twins), (relabelled, [t for t in twins if t[1] != emotion])):
            if wanted:
                kind["images"] += 1
                if len(kind["examples"]) < _EXAMPLES:
                    kind["examples"].append(f"{image_id} ({emotion}) = {wanted[0][0]} ({wanted[0][1]})")
    return {"": shared, ", under another label": relabelled}


def find_duplicates(out: Path, splits: list[str]) -> dict[str, dict[str, dict]]:
    """split -> kind of duplicate -> {"images": count, "examples": first ones}, over the splits built into `out`.

    "within this split": images whose bytes equal another image's of the split; "also in split S": images whose
    bytes are in split S; each also "..., under another label" when the twin is labelled otherwise. Only kinds with
    at least one image are listed."""
    images = {split: _split_images(out, split) for split in splits}
    found: dict[str, dict[str, dict]] = {}
    for split in splits:
        kinds = {}
        for other in splits:
            if not images[split] or not images[other]:
                continue
            name = "within this split" if other == split else f"also in split {other}"
            for suffix, counts in _twins(images[split], images[other], other == split).items():
                if counts["images"]:
                    kinds[name + suffix] = counts
        found[split] = kinds
    return found
