"""`python -m connector.sandbox.xero`: the same as `connector sandbox xero`."""

from connector.sandbox.xero.cli import xero_command

if __name__ == "__main__":
    xero_command(prog_name="python -m connector.sandbox.xero")
