"""`python -m sandbox.xero`: the same as `connector sandbox xero`."""

from sandbox.xero.cli import xero_command

if __name__ == "__main__":
    xero_command(prog_name="python -m sandbox.xero")
