"""textft-predict's files: an input file -> chunks of rows (bounded memory); scored chunks -> part files (resume) ->
one output file by rename. Readers are per extension (READERS); a folder (of images) is read by textft/images.py."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from textft.config import TextftError
from textft.inference import adapter_base, labelled_config, local_dir

if TYPE_CHECKING:
    from textft.predict import PredictConfig

log = logging.getLogger("textft")

OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")


# ---- reading: a file -> chunks of rows (DataFrames indexed by the row number in the file) --------------------------------


def _csv_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    from textft.data import check_encoding

    check_encoding(path, s.encoding, "input")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    # every column as text, exactly as written: the output keeps the input columns unchanged
    reader = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=s.chunk_size, encoding=s.encoding)
    try:
        yield from reader
    except pd.errors.EmptyDataError:
        return
    except pd.errors.ParserError as e:
        raise TextftError(f"input: {path} could not be parsed as csv: {str(e).strip().splitlines()[-1]}") from None


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, line) without its newline, decoding line by line so that an error names the line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError:
                raise TextftError(
                    f"input: {path} line {number} is not valid {encoding}; convert the file to UTF-8 or set encoding=..."
                ) from None


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    start = 0
    for lines in _batched((x for x in _lines(path, s.encoding) if x[1].strip()), s.chunk_size):
        records = []
        for number, line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise TextftError(
                    f"input: {path} line {number} is not valid JSON ({e.msg}); fix or remove that line"
                ) from None
            if not isinstance(record, dict):
                raise TextftError(
                    f'input: {path} line {number} is not a JSON object; each line must be {{"column": value, ...}}'
                )
            records.append(record)
        yield pd.DataFrame.from_records(records, index=range(start, start + len(records)))
        start += len(records)


def _txt_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    column = s.text_column if isinstance(s.text_column, str) else "text"
    start = 0
    for lines in _batched(_lines(path, s.encoding), s.chunk_size):
        yield pd.DataFrame({column: [line for _, line in lines]}, index=range(start, start + len(lines)))
        start += len(lines)


def _parquet_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except Exception as e:
        raise TextftError(f"input: {path} could not be read as parquet: {str(e).splitlines()[0]}") from None
    start = 0
    for batch in file.iter_batches(batch_size=s.chunk_size):
        frame = batch.to_pandas()
        frame.index = range(start, start + len(frame))
        start += len(frame)
        yield frame
    if start == 0:
        yield file.schema_arrow.empty_table().to_pandas()


def _image_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    from textft.images import image_rows

    return image_rows(path, s.image_column or "image", s.chunk_size)


def known_rows(s: PredictConfig, task: str = "text") -> int | None:
    """The input's row count where it is cheap and exact (for the progress bar): parquet metadata, lines of a .txt or
    .jsonl, images of a folder; None for csv/tsv (a quoted field may span lines)."""
    path = Path(s.input)
    suffix = path.suffix.lower()
    if path.is_dir() or (task == "image" and suffix == ".txt"):
        from textft.images import image_files

        return len(image_files(path))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix in (".txt", ".jsonl"):
        with open(path, "rb") as f:
            return sum(1 for line in f if suffix == ".txt" or line.strip())
    return None


FOLDER = "/"  # the READERS key for an input that is a folder (e.g. of images)
READERS: dict[str, Callable[[Path, PredictConfig], Iterator[pd.DataFrame]]] = {
    ".csv": _csv_chunks,
    ".tsv": _csv_chunks,
    ".jsonl": _jsonl_chunks,
    ".parquet": _parquet_chunks,
    ".txt": _txt_chunks,
    FOLDER: _image_chunks,
}


def read_chunks(s: PredictConfig, task: str = "text") -> Iterator[pd.DataFrame]:
    """The input as chunks of at most chunk_size rows; at least one (possibly empty) chunk."""
    path = Path(s.input)
    reader = READERS.get(FOLDER if path.is_dir() else path.suffix.lower())
    if task == "image" and path.suffix.lower() == ".txt":  # for an image model, a .txt lists image paths
        reader = _image_chunks
    if reader is None:
        kinds = ", ".join("a folder" if k == FOLDER else k for k in READERS)
        raise TextftError(f"input: {path} is not a supported input; use one of {kinds}")
    if not path.exists():
        raise TextftError(f"input: file {path} does not exist; fix the path (relative paths start from {Path.cwd()})")
    empty = True
    for chunk in reader(path, s):
        empty = False
        yield chunk
    if empty:
        yield pd.DataFrame()


# ---- output: part files per chunk (resume), then one file by rename ------------------------------------------------------


def check_paths(s: PredictConfig) -> tuple[Path, Path]:
    output = Path(s.output)
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise TextftError(f"output: {output} has an unsupported extension; use one of {', '.join(OUTPUT_FORMATS)}")
    if not output.parent.is_dir():
        raise TextftError(f"output: folder {output.parent} does not exist; create it (mkdir -p {output.parent}) first")
    if Path(s.input).exists() and output.resolve() == Path(s.input).resolve():
        raise TextftError("output must not be the input file; choose another output path")
    return output, output.parent / f".{output.name}.parts"


MODEL_FILES = ("*.safetensors", "*.json", "*.txt", "*.model", "*.yaml")  # weights, configs, tokenizer, recipe


def model_fingerprint(model_dir: Path) -> dict:
    """The model's files by name -> [size, mtime_ns]: a retrained, re-merged or re-downloaded model reads differently."""
    files = sorted({p for pattern in MODEL_FILES for p in model_dir.glob(pattern) if p.is_file()})
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def model_identity(s: PredictConfig) -> dict:
    """Where the model is and what it is: its files (and, for an adapter, its base's) by size and modification time."""
    model_dir = Path(s.model) if Path(s.model).is_dir() else local_dir(s.model)
    identity = {"model": str(model_dir.resolve()), "model_files": model_fingerprint(model_dir)}
    if (model_dir / "adapter_config.json").is_file():
        base = Path(adapter_base(model_dir, s))
        labelled = labelled_config(model_dir)
        identity["labels_config"] = model_fingerprint(labelled) if labelled and labelled != model_dir else None
        identity["base_files"] = model_fingerprint(base) if base.is_dir() else str(base)
    return identity


def parts_manifest(s: PredictConfig) -> dict:
    """What the part files depend on: a rerun with the same manifest resumes, any change starts over."""
    stat = Path(s.input).stat()
    keys = ("text_column", "max_length", "truncation", "long_text", "stride", "chunk_size", "prefix", "base_model")
    return {
        "input": str(Path(s.input).resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        **model_identity(s),
        **{k: v for k, v in asdict(s).items() if k in keys},
    }


def prepare_parts(parts: Path, s: PredictConfig) -> None:
    manifest = parts_manifest(s)
    found = parts / "manifest.json"
    if parts.is_dir() and s.resume and found.is_file() and json.loads(found.read_text()) == manifest:
        done = len(list(parts.glob("part-*.parquet")))
        if done:
            log.info("resuming: %d chunk(s) already scored in %s", done, parts)
        return
    if parts.is_dir():
        log.info("starting over: %s", "resume=false" if not s.resume else f"input or settings changed since {parts}")
        shutil.rmtree(parts)
    parts.mkdir()
    from textft.config import write_text_atomic

    write_text_atomic(found, json.dumps(manifest, indent=2))


def to_arrow(frame: pd.DataFrame):
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed types (jsonl): keep its values as text
        mixed = [c for c in frame.columns if frame[c].dtype == object]
        return pa.Table.from_pandas(frame.astype({c: str for c in mixed}), preserve_index=False)


def write_part(table, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def assemble(parts: Path, output: Path, pred_names: list[str], separator: str = "|") -> int:
    """Concatenate the part files, in chunk order, into the output format; rename into place; return the row count.
    List columns (multi-label `labels`) stay lists in jsonl/parquet and are joined with `separator` in csv."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(parts.glob("part-*.parquet"))
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    names = [n for n in schema.names if n not in pred_names] + pred_names  # input columns first, in first-seen order
    schema = pa.schema([schema.field(n) for n in names])
    tmp = output.with_name(f".{output.name}.tmp")
    suffix, rows = output.suffix.lower(), 0
    writer = pq.ParquetWriter(tmp, schema) if suffix == ".parquet" else open(tmp, "w", encoding="utf-8", newline="")
    try:
        for i, f in enumerate(files):
            table = pq.read_table(f)
            table = pa.table({n: table[n] if n in table.column_names else pa.nulls(len(table)) for n in names})
            table = table.cast(schema)
            rows += len(table)
            if suffix == ".parquet":
                writer.write_table(table)
            elif suffix == ".csv":
                frame = table.to_pandas()
                for name in (f.name for f in schema if pa.types.is_list(f.type)):
                    frame[name] = [separator.join(v) if v is not None else "" for v in frame[name]]
                frame.to_csv(writer, header=i == 0, index=False)
            elif len(table):
                writer.write(
                    table.to_pandas().to_json(orient="records", lines=True, force_ascii=False).rstrip("\n") + "\n"
                )
        writer.close()
        os.replace(tmp, output)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return rows


def count_flagged(parts: Path, flag: str) -> int:
    """Rows flagged in the part files (this run's and a resumed run's alike)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return sum(int(pc.sum(pq.read_table(f, columns=[flag])[flag]).as_py() or 0) for f in parts.glob("part-*.parquet"))
