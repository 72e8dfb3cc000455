"""``conveyor demo``: run the whole loop locally and show it (``--down`` cleans up)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from conveyor.cli.options import state_dir, state_option
from conveyor.cli.output import console, print_json
from conveyor.demo.loop import Step, run_demo, tear_down


@click.command()
@click.option("--down", is_flag=True, help="Stop and remove everything the demo started.")
@click.option("--keep", is_flag=True, help="Leave the registry and receiver running afterwards.")
@state_option("the demo lives in its demo/ subdirectory")
@click.option("--receiver-port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(down: bool, keep: bool, state: Path | None, receiver_port: int, as_json: bool) -> None:
    """Run the whole conveyor loop on this machine, with nothing but a Docker engine.

    \b
    1. validate and render the example spec (examples/hello-web/conveyor.yml)
    2. start a local registry (with auth) and the webhook receiver
    3. post a GitLab push event: the worker tests, builds, pushes and deploys it blue-green
    4. post a second push with a code change: the new version takes over, no failed requests
    The service stays up at http://127.0.0.1:8080/ until `conveyor demo --down`.
    """
    root = state_dir(state) / "demo"
    if down:
        done = tear_down(root)
        if as_json:
            print_json({"down": done})
        else:
            for line in done or ["nothing to clean up"]:
                console.print(line)
        return

    def report(step: Step) -> None:
        if not as_json:
            console.print(f"[green]✓[/green] {step.name} [dim]({step.seconds:.1f} s)[/dim]")
            if step.detail:
                console.print(f"    {step.detail}", markup=False)

    result = run_demo(root, receiver_port=receiver_port, keep=keep, report=report)
    if as_json:
        print_json(result)
        return
    table = Table("step", "seconds")
    for step in result.steps:
        table.add_row(step.name, f"{step.seconds:.1f}")
    console.print(table)
    console.print(f"service:   {result.url}  (version {result.versions[-1]})")
    console.print(
        f"switch:    new version serving {result.switch_seconds:.1f} s after the push; "
        f"{result.probe.requests if result.probe else 0} requests during it, 0 failed"
    )
    console.print("rendered:  " + ", ".join(result.rendered))
    for name, where in result.logs.items():
        console.print(f"{name + ':':<10} {where}")
    if result.plan is not None:
        console.print(f"plan:      {result.plan.get('summary')}")
    console.print("clean up:  conveyor demo --down")
