"""Parquet shards in which the rows of one image share its stored bytes: the builder's Arrow output -> the files a
built dataset folder holds.

Flow: `EmoVITInstructBuilder` (Arrow shards in the work folder) -> `write_parquet_shards` -> `out/<folder>/`.
datasets writes an `Image()` column PLAIN, one copy per row, so an image with a categorical row, two conversation
pairs and a reasoning pair would be stored four times. Here each Arrow shard is rewritten as Parquet with every
column dictionary-encoded (image bytes uncompressed, as datasets leaves them, the rest snappy), in row groups that
never split the rows of one image: an image's bytes are stored once in its row group. Content-defined chunking and
a page index are kept, as datasets writes them. Readers see ordinary Parquet (pyarrow, and so `load_dataset`, decode
dictionaries transparently); the features stay in the schema metadata.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROWS_PER_GROUP = 100  # datasets' writer batch for image rows (DEFAULT_WRITER_BATCH_SIZE): small row groups
BYTES_PER_GROUP = 64 << 20  # ...and a row group closes once its distinct images reach this many bytes
DICTIONARY_PAGE_LIMIT = 512 << 20  # above the largest group's distinct values, so dictionaries never fall back
_IMAGE_LEAVES = ("image.bytes", "images.list.element.bytes")


@dataclass
class ShardStats:
    """What a set of shards holds, per task (None for rows without a `task` column, the `messages` view): rows,
    distinct image ids and Arrow bytes (the dataset_info `num_bytes` of each view)."""

    rows: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    arrow_bytes: dict = field(default_factory=dict)

    def add(self, task, ids: set, rows: int, nbytes: int) -> None:
        self.rows[task] = self.rows.get(task, 0) + rows
        self.images.setdefault(task, set()).update(ids)
        self.arrow_bytes[task] = self.arrow_bytes.get(task, 0) + nbytes


def _leaves(name: str, kind) -> list[str]:
    """Parquet column paths under one Arrow field ("image.bytes", "images.list.element.bytes")."""
    import pyarrow as pa

    if isinstance(kind, pa.ExtensionType):
        kind = kind.storage_type
    if pa.types.is_struct(kind):
        return [leaf for child in kind for leaf in _leaves(f"{name}.{child.name}", child.type)]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _leaves(f"{name}.list.element", kind.value_type)
    return [name]


def _row_image_sizes(table) -> list[int]:
    """Bytes of each row's image(s), from the `image` or `images` column, chunk by chunk (nothing is copied)."""
    import pyarrow.compute as pc

    sizes = []
    for chunk in table.column("image" if "image" in table.column_names else "images").chunks:
        if "image" in table.column_names:
            sizes += [size or 0 for size in pc.binary_length(chunk.field("bytes")).to_pylist()]
            continue
        per_row = [0] * len(chunk)
        lengths = pc.binary_length(chunk.flatten().field("bytes")).to_pylist()
        for row, size in zip(chunk.value_parent_indices().to_pylist(), lengths):
            per_row[row] += size or 0
        sizes += per_row
    return sizes


def _image_aligned_groups(batches) -> Iterator:
    """Tables of consecutive rows, read batch by batch (flat memory, slices copy nothing): the rows of one image id
    stay together, and a table closes at an image boundary once it holds ROWS_PER_GROUP rows or BYTES_PER_GROUP
    bytes of distinct images."""
    import pyarrow as pa

    pending, rows, distinct_bytes, previous = [], 0, 0, None
    for batch in batches:
        ids, sizes, start = batch.column("id").to_pylist(), _row_image_sizes(pa.Table.from_batches([batch])), 0
        for row, image_id in enumerate(ids):
            new_image = image_id != previous
            if new_image and rows and (rows >= ROWS_PER_GROUP or distinct_bytes >= BYTES_PER_GROUP):
                yield pa.Table.from_batches([*pending, batch.slice(start, row - start)])
                pending, rows, distinct_bytes, start = [], 0, 0, row
            rows, previous = rows + 1, image_id
            distinct_bytes += sizes[row] if new_image else 0
        pending.append(batch.slice(start))
    if rows:
        yield pa.Table.from_batches(pending)


def _count(group, stats: ShardStats) -> None:
    import pyarrow.compute as pc

    ids = group.column("id").to_pylist()
    if "task" not in group.column_names:
        stats.add(None, set(ids), group.num_rows, group.nbytes)
        return
    tasks = group.column("task").to_pylist()
    for task in dict.fromkeys(tasks):
        rows = group.filter(pc.equal(group.column("task"), task))
        stats.add(task, {image for image, row_task in zip(ids, tasks) if row_task == task}, rows.num_rows, rows.nbytes)


def write_parquet_shards(arrow_files: list[Path], target: Path, split: str) -> tuple[list[Path], ShardStats]:
    """Rewrites the builder's Arrow shards (IPC streams) as `target/<split>-NNNNN-of-NNNNN.parquet`, one per Arrow
    shard that has rows, streaming; returns the files written and what they hold."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stats, written = ShardStats(), []
    target.mkdir(parents=True, exist_ok=True)
    for path in arrow_files:
        with pa.OSFile(str(path)) as source:
            reader = pa.ipc.open_stream(source)
            leaves = [leaf for column in reader.schema for leaf in _leaves(column.name, column.type)]
            compression = {leaf: "none" if leaf in _IMAGE_LEAVES else "snappy" for leaf in leaves}
            shard = target / f"{split}-{len(written):05d}.parquet.part"
            with pq.ParquetWriter(shard, reader.schema, compression=compression, use_dictionary=True,
                                  dictionary_pagesize_limit=DICTIONARY_PAGE_LIMIT, write_page_index=True,
                                  use_content_defined_chunking=True) as writer:
                for group in _image_aligned_groups(reader):
                    writer.write_table(group, row_group_size=group.num_rows)
                    _count(group, stats)
        if pq.read_metadata(shard).num_rows:
            written.append(shard)
        else:
            shard.unlink()
    named = [target / f"{split}-{number:05d}-of-{len(written):05d}.parquet" for number in range(len(written))]
    for shard, name in zip(written, named):
        shard.rename(name)
    return named, stats
