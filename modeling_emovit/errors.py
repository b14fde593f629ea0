"""The one exception type for bad user input across the package (files, fields, configs)."""


class EmoVITInputError(ValueError):
    """Bad input, described in one sentence that names the file or field; the CLI prints it without a traceback."""
