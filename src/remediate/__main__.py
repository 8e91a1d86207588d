"""`python -m remediate`: the same CLI as the `remediate` command."""

from remediate.entry import entry

entry()
