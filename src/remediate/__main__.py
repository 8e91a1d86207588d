"""`python -m remediate`: the same CLI as the `remediate` command."""

from remediate.cli import entry

entry()
