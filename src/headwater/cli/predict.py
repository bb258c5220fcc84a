"""``predict``: batch inference over an entity file or query, with a progress bar."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from headwater.cli.commands import repo_option
from headwater.cli.materialize import TIME
from headwater.cli.progress import progress_bar
from headwater.cli.render import console
from headwater.errors import DataError

PREVIEW_ROWS = 10


@click.command()
@click.argument("model_ref")
@click.option("--entities", "-e", required=True,
              help="A Parquet or CSV file of entity rows (join keys, an event time, request "
                   "fields), or a SQL query over the offline data (SELECT ...).")
@click.option("--timestamp-field", "-t", default=None,
              help="The entity rows' event time column (default: the one timestamp column).")
@click.option("--as-of", "as_of", type=TIME, default=None,
              help="Score every row as of this time (ISO-8601, naive is UTC); the rows then "
                   "hold only join keys. Default: each row's own event time.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the predictions to this Parquet file (atomically).")
@click.option("--table", default=None,
              help="Write the predictions to this table ('name' or 'schema.name') of "
                   "--database or --connection.")
@click.option("--database", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The DuckDB database file of --table (created if missing).")
@click.option("--connection", default=None,
              help="The PostgreSQL database of --table: a name in offline.connections.")
@click.option("--mode", type=click.Choice(["create", "append", "replace"]), default="create",
              show_default=True, help="How --table is written.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Rows scored at a time.")
@repo_option
def predict(*, model_ref: str, entities: str, timestamp_field: str | None,
            as_of: datetime | None, output: Path | None,
            table: str | None, database: Path | None, connection: str | None, mode: str,
            chunk_rows: int, repo: Path) -> None:
    """Score entity rows with MODEL_REF (churn@production, churn:3 or churn).

    Each row gets the model's features as of its event time (the point-in-time join that
    built the training frame), then a prediction. Without --output or --table, the first
    rows are printed."""
    from headwater.store import FeatureStore

    if table is not None and output is not None:
        raise click.UsageError("give --output or --table, not both: each would run the join "
                               "and the model again")
    if table is not None and (database is None) == (connection is None):
        raise click.UsageError("--table needs exactly one of --database or --connection")
    if table is None and (database is not None or connection is not None):
        raise click.UsageError("--database and --connection go with --table")
    with FeatureStore(repo) as store:
        entity_df = read_entities(entities, store.repo_path)
        began = time.perf_counter()
        with progress_bar() as progress:
            job = store.predict(model_ref, entity_df, timestamp_field=timestamp_field,
                                as_of=as_of, chunk_rows=chunk_rows, progress=progress)
            version = job.model_version
            if output is not None:
                rows, result = job.to_parquet(output), None
            elif table is not None:
                rows = job.to_table(table, database=database, connection=connection,
                                    settings=store.settings, mode=mode)
                result = None
            else:
                result = job.to_arrow()
                rows = result.num_rows
        seconds = time.perf_counter() - began
    out = console()
    if result is not None:
        out.print(result.slice(0, PREVIEW_ROWS).to_pandas().to_string(index=False))
    where = "".join([f" -> {output}" if output else "",
                     f" -> table {table}" if table else ""])
    rate = rows / seconds if seconds > 0 else 0.0
    out.print(f"{version.model}:{version.version}: {rows:,} rows in {seconds:.2f} s "
              f"({rate:,.0f} rows/s){where}")


def read_entities(entities: str, repo: Path) -> Any:
    """The entity rows of ``--entities``: a Parquet or CSV file (as given, or relative to
    the repo) as Arrow, else the text itself as a SQL query."""
    text = entities.strip()
    if text[:7].lower().startswith(("select", "with", "from", "(")):
        return text
    path = Path(text)
    if not path.exists() and (repo / path).exists():
        path = repo / path
    if not path.is_file():
        raise DataError(f"--entities {entities!r} is neither a file nor a SQL query. Fix: "
                        "give a Parquet or CSV file path, or a query starting with SELECT")
    if path.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except pa.ArrowInvalid as exc:
        raise DataError(f"--entities {path} is not a Parquet file ({exc}). Fix: give a "
                        ".parquet or .csv file") from exc
