"""The .cpsgd container: header, per-GoP typed sections with lengths and CRCs."""
