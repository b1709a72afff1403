"""`cxloop demo`: the whole closed loop on one machine (the parts are in `cxloop.demo`)."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console

from cxloop.demo import Demo, DemoError, Step
from cxloop.demo.seed import CASE_SUBJECT, CONNECTION, ORG, RULE, SF_USER

# -- the command ---------------------------------------------------------------------------------


def demo(
    port: int = typer.Option(8000, help="cxloop's port (0: any free port, as for the others)."),
    emulator_port: int = typer.Option(8701, help="The Salesforce emulator's port."),
    smtp_port: int = typer.Option(8025, help="The mail catcher's SMTP port."),
    mail_port: int = typer.Option(8026, help="The mail catcher's web view port."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        file_okay=False,
        help="Where cxloop keeps its data (new or empty); default: a temporary directory, "
        "removed at the end.",
    ),
    headless: bool = typer.Option(
        False, "--headless", help="Run the closed loop by itself, print each step, then stop."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="With --headless: print one JSON object instead."
    ),
    step_timeout: float = typer.Option(
        30.0, "--step-timeout", min=1.0, help="With --headless: seconds each step may take."
    ),
) -> None:
    """Run the closed loop on this machine: cxloop, a Salesforce emulator and a mail catcher."""
    console = Console(stderr=json_output)
    if json_output and not headless:
        console.print("[bold red]error:[/] --json goes with --headless", highlight=False)
        raise typer.Exit(2)
    temporary = data_dir is None
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="cxloop-demo-"))
    elif (data_dir / "cxloop.db").exists():
        console.print(
            f"[bold red]error:[/] {data_dir} already holds a cxloop database; the demo starts "
            "from scratch: give a new or empty --data-dir",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    running = Demo(
        port=port,
        emulator_port=emulator_port,
        smtp_port=smtp_port,
        mail_port=mail_port,
        data_dir=data_dir,
        step_timeout_s=step_timeout,
    )
    # SIGTERM stops the demo as Ctrl-C does: everything is shut down and temporary data removed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if headless:
            ok = _headless(running, console, json_output)
            raise typer.Exit(0 if ok else 1)
        _interactive(running, console, temporary)
    finally:
        running.stop()
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _setup_steps(running: Demo) -> list[tuple[str, Callable[[], str]]]:
    def start() -> str:
        running.start()
        return (
            f"cxloop {running.base_url}, emulator {running.emulator_url}, "
            f"mail catcher {running.mail_url} (SMTP :{running.catcher.smtp_port})"  # type: ignore[union-attr]
        )

    def seed() -> str:
        seeded = running.seed()
        return (
            f"admin {seeded.admin_email}, survey {seeded.survey_id}, connection "
            f"{CONNECTION!r}, 2 workflows, rule {RULE} → {seeded.outbound_url}"
        )

    return [
        ("Start the emulator, the mail catcher and cxloop", start),
        ("Seed the admin, survey, connection, workflows and outbound rule", seed),
    ]


def _headless(running: Demo, console: Console, json_output: bool) -> bool:
    steps: list[Step] = []

    def report(step: Step) -> None:
        steps.append(step)
        if not json_output:
            mark = "[green]✔[/]" if step.ok else "[bold red]✘[/]"
            console.print(
                f"{mark} {step.name} [dim]({step.seconds:.1f} s)[/]\n    {step.detail}",
                highlight=False,
                soft_wrap=True,
            )

    ready = True
    for name, action in _setup_steps(running):
        started = time.monotonic()
        try:
            step = Step(name, True, action(), 0.0)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, DemoError) else f"{type(exc).__name__}: {exc}"
            step = Step(name, False, detail, 0.0)
        step.seconds = round(time.monotonic() - started, 2)
        report(step)
        if not step.ok:
            ready = False
            break
    if ready:
        running.run_loop(report)
    ok = ready and all(s.ok for s in steps)
    if json_output:
        print(json.dumps({"ok": ok, "steps": [asdict(s) for s in steps]}, ensure_ascii=False))
    else:
        verdict = "[green]The loop is closed.[/]" if ok else "[bold red]The loop is not closed.[/]"
        console.print(verdict, highlight=False)
    return ok


def _interactive(running: Demo, console: Console, temporary: bool) -> None:
    try:
        running.start()
        seeded = running.seed()
    except Exception as exc:  # one line that says what, not a traceback
        reason = str(exc) if isinstance(exc, DemoError) else f"{type(exc).__name__}: {exc}"
        console.print(f"[bold red]error:[/] {reason}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    urls = running.urls()
    assert running.catcher is not None
    kept = " (removed at the end)" if temporary else ""
    console.print(
        f"""
[bold]cxloop demo[/]: everything runs in this process; cxloop's data is in {running.data_dir}{kept}

[bold]cxloop[/]                {urls["cxloop"]}
  API docs              {urls["api_docs"]}
  log in                {urls["login"]}  as {seeded.admin_email} / {seeded.admin_password}
  API token             {seeded.api_token}
  survey link           {urls["survey"]}
  outbound endpoint     {urls["outbound_endpoint"]}
[bold]Mail catcher[/]          {urls["mail_catcher"]}  (SMTP 127.0.0.1:{running.catcher.smtp_port})
[bold]Salesforce emulator[/]   {urls["emulator"]}  (org {ORG}, you are {SF_USER})
  records               {urls["emulator_records"]}
  the Case              {urls["emulator_case"]}
  outbound queue        {urls["emulator_outbound"]}

[bold]Try the loop[/]
  1. Open the Case {CASE_SUBJECT!r} ({seeded.case_number}) at the link above, set Status
     to Closed and save: Salesforce sends an outbound message to cxloop.
  2. Open the mail catcher: the invitation "How did we do on case {seeded.case_number}?" to
     jeraldine.black@example.com is there. Click the survey link in it.
  3. Answer and submit.
  4. Reload the Case: Survey NPS Score, Survey Comment and Survey Responded are filled in,
     and a Survey_Response__c points at it.
  Run history: curl -H "Authorization: Bearer {seeded.api_token}" {urls["cxloop"]}/api/v1/runs

Ctrl-C stops everything.""",
        highlight=False,
        soft_wrap=True,
    )
    _wait_for_interrupt()
    console.print("Stopping…", highlight=False)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_for_interrupt() -> None:
    stopped = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
