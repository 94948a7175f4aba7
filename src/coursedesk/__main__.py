"""`python -m coursedesk` runs the command line."""

from coursedesk.cli import main

main()
