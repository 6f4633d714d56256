"""`connector demo` and `connector sandbox …`: the bundled simulators, loaded only by these commands."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option("--bills", default=40, show_default=True, help="bills in the demo tenant")
@click.option("--timeout", default=180.0, show_default=True, help="seconds to wait for the cycle to settle")
def demo(bills: int, timeout: float) -> None:
    """Run the whole product on the embedded default and print where the files landed."""
    from sandbox.demo import run_demo

    sys.exit(run_demo(bills=bills, timeout=timeout))


class LazyGroup(click.Group):
    """A group whose commands are imported only when one of them runs (or its help is shown)."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


#: The bundled simulators, by command name: "module:command".
SANDBOX_COMMANDS = {"xero": "sandbox.xero.cli:xero_command",
                    "sftp": "sandbox.sftp_cli:sftp_command"}


@click.group(cls=LazyGroup, lazy=SANDBOX_COMMANDS)
def sandbox() -> None:
    """Bundled simulators for trying the connector without Xero or Stampli."""
