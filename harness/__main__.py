"""`python -m harness` entry point."""

from harness.cli import main_entry

main_entry()
