"""The eagle-audit command line (a thin skin over the packages eagle, auditors, storage, reports,
flows and probe)."""
