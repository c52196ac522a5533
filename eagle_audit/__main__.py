"""`python -m eagle_audit` runs the CLI (the tests start it this way in subprocesses)."""

from eagle_audit.cli import main

if __name__ == "__main__":
    main()
