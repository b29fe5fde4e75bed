"""The CLI's experiment and dataset commands, on `trainlab.client`. Every read command has
`--json` for scripts; `--url` and `--token` default to the environment, then the config file."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.text import Text

from trainlab import render
from trainlab.client import AuthError, Client, TrainlabError, load_spec
from trainlab.config import config_path
from trainlab.models import Experiment
from trainlab.overrides import OverrideError, apply_overrides
from trainlab.render import SafeConsole
from trainlab.verdict import verdict_lines
from trainlab.watch import follow

console = SafeConsole()
err = SafeConsole(stderr=True)

UrlOpt = Annotated[
    str | None, typer.Option("--url", help="Server URL, with or without /api/v1 (default: $TRAINLAB_URL, config file).")
]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token (default: $TRAINLAB_TOKEN, config file).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
IdArg = Annotated[int, typer.Argument(help="Experiment id.", min=1)]
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "pruned")


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(Text.assemble(("error:", "red"), f" {message}"), soft_wrap=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def connect(url: str | None, token: str | None) -> Iterator[Client]:
    """A client; server errors become one clear line on stderr and exit code 2."""
    client = Client(url, token, retries=2, backoff=0.3)
    try:
        yield client
    except httpx.TransportError as exc:
        fail(
            f"cannot reach the trainlab server at {client.url} ({type(exc).__name__}); start it with "
            "`trainlab up`, or point --url / TRAINLAB_URL at it",
            2,
        )
    except AuthError as exc:
        sent = "" if client.token else "none was sent; "
        fail(
            f"the server refused the token ({sent}{exc}). Pass --token, set TRAINLAB_TOKEN "
            f'or put it in {config_path()} as {{"url": ..., "token": "tl_..."}}',
            2,
        )
    except TrainlabError as exc:
        if exc.status_code == 404 and exc.detail == "Not Found":  # no such route: not a trainlab API there
            fail(
                f"{exc.url or client.url} answered 404 Not Found: is a trainlab server there? "
                "Set --url / TRAINLAB_URL to its address, e.g. http://127.0.0.1:8000",
                2,
            )
        fail(str(exc), 2)
    finally:
        client.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_result(exp: Experiment) -> None:
    """The answer of a finished run: main metric, diagnosis, warnings, a compare's or search's winner."""
    for line in verdict_lines(exp):
        console.print(line, highlight=False)


def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A spec file (YAML or JSON).")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a spec value: path=value, value read as YAML (repeatable)."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run; exit 1 unless it succeeds.")] = False,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit an experiment spec, optionally with --set overrides; --wait follows it."""
    try:
        spec = apply_overrides(load_spec(file), overrides or [])
    except (OverrideError, ValueError) as exc:
        fail(str(exc), 2)
    with connect(url, token) as client:
        exp = client.submit(spec)
        if not as_json:
            console.print(f"submitted experiment {exp.id} ({exp.name})", highlight=False)
            if exp.raw.get("warning"):
                console.print(f"warning: {exp.raw['warning']}", highlight=False, style="yellow")
        if wait:
            exp = client.wait(exp.id) if as_json else follow(client, exp, console)
    if as_json:
        print_json(exp.raw)
    elif wait:
        print_result(exp)
    if wait and exp.status != "succeeded":
        raise typer.Exit(1)


def watch(experiment_id: IdArg, as_json: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Follow an experiment live (epochs and losses; a fan-out's children); exit 1 unless it succeeds."""
    with connect(url, token) as client:
        exp = client.get(experiment_id)
        exp = client.wait(exp.id) if as_json else follow(client, exp, console)
    if as_json:
        print_json(exp.raw)
    else:
        print_result(exp)
    if exp.status != "succeeded":
        raise typer.Exit(1)


def list_experiments(
    status: Annotated[str | None, typer.Option(help=f"One of {', '.join(STATUSES)}.")] = None,
    kind: Annotated[str | None, typer.Option(help="train, kfold, pinn, search, ensemble, compare...")] = None,
    name: Annotated[str | None, typer.Option(help="Names containing this.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List experiments, newest first."""
    if status is not None and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}", 2)
    with connect(url, token) as client:
        page = client.list(status=status, kind=kind, name=name, limit=limit)
    if as_json:
        print_json(page.raw)
    else:
        console.print(render.experiments_table(page.items, page.total))


def show(experiment_id: IdArg, as_json: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """An experiment's summary: metrics, diagnosis and advice, warnings, children."""
    with connect(url, token) as client:
        exp = client.get(experiment_id)
    if as_json:
        print_json(exp.raw)
    else:
        console.print(render.experiment_details(exp), soft_wrap=True)


def status(experiment_id: IdArg, as_json: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """An experiment's status, error and test metrics in a few lines."""
    with connect(url, token) as client:
        exp = client.get(experiment_id)
    if as_json:
        print_json(exp.raw)
    else:
        print_result(exp)


def metrics(
    experiment_id: IdArg,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV rows step,split,name,value.")] = False,
    split: Annotated[str | None, typer.Option(help="train, validation...")] = None,
    name: Annotated[str | None, typer.Option(help="loss, accuracy, lr...")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The per-epoch metrics: a table, --csv or --json."""
    with connect(url, token) as client:
        rows = client.metrics(experiment_id, split=split, name=name)
    if as_json:
        print_json(rows.as_dicts())
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=["step", "split", "name", "value"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows.as_dicts())
    else:
        console.print(render.metrics_table(rows))


def artifacts(
    experiment_id: IdArg,
    download: Annotated[Path | None, typer.Option("--download", help="Save every artifact into this folder.")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """An experiment's files (plots, predictions, weights); --download DIR saves them."""
    with connect(url, token) as client:
        items = client.artifacts(experiment_id)
        paths = client.download_all(experiment_id, download) if download else []
    if as_json:
        rows = [a.as_dict() for a in items]
        if download:
            for row in rows:
                row["path"] = str(download / row["name"])
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "size", "type")
    for a in items:
        table.add_row(a.name, f"{a.size:,}", a.content_type)
    console.print(table)
    for path in paths:
        console.print(f"saved {path}", highlight=False)


def compare(
    experiment_ids: Annotated[list[int], typer.Argument(help="Two or more experiment ids.")],
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Metrics side by side, and the spec paths whose values differ."""
    if len(experiment_ids) < 2:
        fail("compare needs two or more experiment ids", 2)
    with connect(url, token) as client:
        experiments = [client.get(i) for i in experiment_ids]
    rows = render.compare_rows(experiments)
    if as_json:
        print_json(rows)
    else:
        console.print(render.compare_tables(experiments, rows))


def cancel(experiment_id: IdArg, as_json: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Cancel an experiment (queued: now; running: at its next check)."""
    with connect(url, token) as client:
        exp = client.cancel(experiment_id)
    if as_json:
        print_json(exp.raw)
        return
    note = " (cancel requested)" if exp.status == "running" else ""
    console.print(f"experiment {experiment_id}: {exp.status}{note}", highlight=False)


def delete(experiment_id: IdArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Delete a finished experiment with its children, metrics and artifacts."""
    with connect(url, token) as client:
        client.delete(experiment_id)
    console.print(f"experiment {experiment_id} deleted", highlight=False)


datasets = typer.Typer(
    help="Upload and list datasets (CSV, NPZ, or folders of class folders of audio clips or images); "
    "use them as `data: {source: dataset/<id>}`."
)


@datasets.command("upload")
def datasets_upload(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            help="A CSV or NPZ file; or a folder data set (one sub-folder per class of WAV/FLAC clips or PNG/JPEG "
            "images): a .zip/.tar(.gz) of it, or the folder itself (packed into a .zip as it is sent).",
        ),
    ],
    target: Annotated[str | None, typer.Option(help="The label column of a CSV.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for it (default: the file's).")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Upload a dataset."""
    with connect(url, token) as client:
        try:
            dataset = client.upload_dataset(file, target=target, name=name)
        except ValueError as exc:  # an empty folder
            fail(str(exc))
    if as_json:
        print_json(dataset.raw)
    elif dataset.raw.get("format") == "folder":
        console.print(render.folder_summary(dataset), highlight=False)
    else:
        remembered = f"; target {target} by default" if target else "; give data.target in the spec"
        console.print(
            f"dataset {dataset.id} ({dataset.name}): use data.source dataset/{dataset.id}{remembered}", highlight=False
        )


@datasets.command("list")
def datasets_list(as_json: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """List uploaded datasets: rows, columns, target and class counts."""
    with connect(url, token) as client:
        items = client.datasets()
    if as_json:
        print_json([d.raw for d in items])
        return
    console.print(render.datasets_table(items))


@datasets.command("show")
def datasets_show(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.", min=1)],
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """One dataset: its shape, columns, target, class counts (a folder set: files per class, durations and
    sample rates or image sizes) and the spec line that uses it."""
    with connect(url, token) as client:
        dataset = client.dataset(dataset_id)
    if as_json:
        print_json(dataset.raw)
    else:
        console.print(render.dataset_details(dataset), soft_wrap=True)


@datasets.command("delete")
def datasets_delete(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.", min=1)],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete a dataset no experiment uses."""
    with connect(url, token) as client:
        client.delete_dataset(dataset_id)
    console.print(f"dataset {dataset_id} deleted", highlight=False)
