"""`connector sandbox sftp`: run the bundled SFTP server in the foreground and print what `connector sftp
add` needs to deliver to it, so Stampli's import folder can be stood in for without Docker or root."""

from __future__ import annotations

import json
import secrets
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from sandbox.sftp import BundledSftpServer


@click.command("sftp")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (loopback by default).")
@click.option("--port", default=2222, show_default=True, type=click.IntRange(min=0, max=65535),
              help="Port; 0 picks a free one.")
@click.option("--user", "username", default="stampli", show_default=True, help="The one user it accepts.")
@click.option("--password", envvar="CONNECTOR_SANDBOX_SFTP_PASSWORD", show_envvar=True, metavar="PASSWORD",
              help="The user's password; without it a new one is made and printed.")
@click.option("--import-dir", default="/import", show_default=True, help="The import folder, as clients see it.")
@click.option("--dir", "home", default=Path("var/sandbox-sftp"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the files land (under root/) and the host key is kept, so the pinned key survives "
                   "a restart.")
@click.option("--json", "as_json", is_flag=True, help="Print the connection details as one JSON object.")
def sftp_command(host: str, port: int, username: str, password: str | None, import_dir: str, home: Path,
                 as_json: bool) -> None:
    """Serve SFTP for one user, chrooted to a local folder, until interrupted (Ctrl-C or SIGTERM)."""
    made_password = None
    if not password:  # a password given in the environment is never printed
        password = made_password = secrets.token_urlsafe(16)
    home = home.resolve()
    server = BundledSftpServer(home / "root", username, password, None, host=host, port=port,
                               host_key_file=home / "ssh_host_ed25519_key")
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"the SFTP server cannot listen on {host}:{port}: {exc}") from exc
    landing = server.ensure_dir(import_dir)
    details = {"host": host, "port": server.port, "user": username, "password": made_password,
               "import_dir": import_dir, "host_key": server.host_key, "files_land_in": str(landing)}
    stop = threading.Event()  # SIGTERM stops it as Ctrl-C does; taken before anything is printed
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        if as_json:
            click.echo(json.dumps(details))
        else:
            _print_human(details)
        sys.stdout.flush()
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _restore(previous)
        server.stop()


def _restore(previous: Any) -> None:
    handler: Any = previous if previous is not None else signal.SIG_DFL
    signal.signal(signal.SIGTERM, handler)


def _print_human(details: dict[str, Any]) -> None:
    password = details["password"] or "(as given)"
    click.echo("Bundled SFTP server, standing in for Stampli's import folder (Ctrl-C stops it)")
    for label, key in (("host", "host"), ("port", "port"), ("user", "user")):
        click.echo(f"  {label:<17} {details[key]}")
    click.echo(f"  {'password':<17} {password}")
    click.echo(f"  {'import folder':<17} {details['import_dir']}")
    click.echo(f"  {'host key':<17} {details['host_key']}")
    click.echo(f"  {'files land in':<17} {details['files_land_in']}")
    add = ["connector", "sftp", "add", "--host", details["host"], "--port", str(details["port"]),
           "--user", details["user"], "--import-dir", details["import_dir"], "--host-key", details["host_key"],
           "--password-stdin", "--tenant", "TENANT_ID"]
    typed = shlex.quote(details["password"]) if details["password"] else '"$PASSWORD"'
    click.echo("Deliver a tenant's files here (the password goes on standard input):")
    click.echo(f"  printf '%s\\n' {typed} | {shlex.join(add)}")
