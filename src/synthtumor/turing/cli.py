"""Command line of ``synthtumor.turing``: ``register(app)`` adds ``synthtumor turing ...``."""

from __future__ import annotations

import errno
import re
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from synthtumor.console import console, err_console, print_table, user_errors
from synthtumor.synthesis_options import (
    CountLongOpt,
    ProfileOpt,
    TumorProbsOpt,
    TypeOpt,
    build_config,
)

turing_app = typer.Typer(no_args_is_help=True, help="Visual Turing test: build a blinded "
                         "reader study, serve it to readers in a browser, report their answers.")

StudyArg = Annotated[Path, typer.Argument(help="Study folder (made by `synthtumor turing build`).")]


@turing_app.command()
def build(
    real: Annotated[Path, typer.Option("--real", help="Datalist JSON of real-tumor cases "
                                       "(labels 0/1/2, every case with a tumor).")],
    healthy: Annotated[Path, typer.Option("--healthy", help="Datalist JSON of healthy cases "
                                          "(labels 0/1) to paste synthetic tumors into.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Study folder to create.")],
    synthetic_per_case: Annotated[int, typer.Option(
        min=1, help="Synthetic cases drawn from each healthy CT.")] = 1,
    lesions_per_real: Annotated[int, typer.Option(
        min=1, help="At most this many cases (different lesions) per real CT.")] = 1,
    seed: Annotated[int, typer.Option("--seed", "-s", min=0, help="Seed of the synthetic "
                                      "tumors and of every reader's case order.")] = 0,
    window: Annotated[tuple[float, float], typer.Option(help="CT window low high (HU).")]
    = (-100.0, 250.0),
    fov_mm: Annotated[float, typer.Option(help="Side of the square field of view (mm).")] = 128.0,
    pixels: Annotated[int, typer.Option(help="Image side (pixels).")] = 256,
    slices: Annotated[int, typer.Option(help="Axial slices per case, centred on the lesion.")]
    = 15,
    slice_mm: Annotated[float, typer.Option(help="Distance between slices (mm).")] = 2.0,
    min_lesion_ml: Annotated[float, typer.Option(help="Smallest lesion shown (ml).")] = 0.1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")]
    = False,
    reference: Annotated[bool, typer.Option(
        "--reference", help="Synthetic tumors by the reference method (default: all effects, "
        "as --realistic elsewhere).")] = False,
    tumor_type: TypeOpt = None,
    tumor_probs: TumorProbsOpt = None,
    count: CountLongOpt = None,
    profile: ProfileOpt = None,
    discard_answers: Annotated[bool, typer.Option(
        "--discard-answers", help="With --overwrite: replace a study that holds readers' "
        "answers (they are lost).")] = False,
) -> None:
    """Build a blinded study: real-tumor and synthetic-tumor cases, rendered identically."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from synthtumor.turing.build import build_study
    from synthtumor.turing.render import View

    with user_errors(), Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=err_console, transient=True, disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("reading", total=None)
        view = View(fov_mm, pixels, slices, slice_mm, window)
        config = build_config(tumor_type=tumor_type, tumor_probs=tumor_probs, count=count,
                              realistic=not reference, profile=profile)
        result = build_study(
            real, healthy, out, synthetic_per_case=synthetic_per_case,
            lesions_per_real=lesions_per_real, seed=seed, view=view,
            min_lesion_ml=min_lesion_ml, overwrite=overwrite, config=config,
            discard_answers=discard_answers,
            progress=lambda msg, done, total: bar.update(task, description=msg,
                                                         completed=done, total=total),
        )
    for note in result.warnings:
        err_console.print(f"[yellow]warning:[/] {note}", highlight=False)
    console.print(f"wrote [bold]{result.folder}[/]: {result.real + result.synthetic} cases "
                  f"({result.real} real, {result.synthetic} synthetic; the key is in key.json, "
                  "never served)")


@turing_app.command()
def serve(
    study: StudyArg,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 = this computer only.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Another name readers type to reach the server (a DNS name or "
        "address; repeatable). Requests naming any other host are refused.")] = None,
) -> None:
    """Serve the study to readers in a web browser (answers go to STUDY/answers.sqlite)."""
    import uvicorn

    from synthtumor.turing.app import allowed_hosts, create_app

    with user_errors():
        hosts = allowed_hosts(host, [_host_name(h) for h in allow_host or []])
        app = create_app(study, hosts=hosts)
        sock = _bind(host, port)  # before "reader study at": a busy port is a one-line error
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach this "
                          "address can read the cases and answer as any reader (no login); "
                          f"host names answered: {', '.join(hosts)}", highlight=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"reader study at [bold]http://{shown}:{port}/[/] (Ctrl+C to stop)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?",
                        re.ASCII)


def _host_name(name: str) -> str:
    """A host name or address for ``--allow-host`` (no wildcards, ports or schemes)."""
    if not _HOST_NAME.fullmatch(name):
        raise ValueError(f"--allow-host {name!r} is not a host name or address")
    return name


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) for uvicorn; ValueError (one line) if it cannot be."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as err:
        raise ValueError(f"--host {host!r}: cannot resolve it ({err})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as err:
        sock.close()
        why = ("the port is already in use (another server? choose one with --port)"
               if err.errno == errno.EADDRINUSE else err.strerror)
        raise ValueError(f"cannot listen on {host} port {port}: {why}") from None
    sock.set_inheritable(True)
    return sock


@turing_app.command()
def report(
    study: StudyArg,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for report.json and "
                                             "report.html (default: STUDY/report).")] = None,
) -> None:
    """Score every reader against the key: accuracy, sensitivity, specificity, fooled k of n."""
    from rich.table import Table

    from synthtumor.turing.report import HEADER, UNSURE_RULE, rows, study_report, write_report

    with user_errors():
        result = study_report(study)
        written = write_report(result, out or study / "report")
    table = Table(title="Visual Turing test (positive = synthetic)", title_justify="left")
    for col in HEADER:
        table.add_column(col, justify="left" if col == "reader" else "right",
                         no_wrap=col != "reader")
    for row in rows(result):
        table.add_row(*row)
    print_table(table)
    console.print(f"{UNSURE_RULE}.\nwrote {', '.join(str(p) for p in written)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``turing`` command group to ``app``."""
    app.add_typer(turing_app, name="turing", help="Visual Turing test: a blinded reader study "
                  "of real and synthetic tumors, in the browser.")
