"""The one version source: the package, the CLI's --version, report.json and pyproject.toml read it here."""

__version__ = "0.1.0"
