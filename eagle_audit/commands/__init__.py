"""One module per eagle-audit sub-command."""
