"""The one exception type for bad user input across the package (files, fields, configs), and `reading`, which
names what was being read when a library raises, so that the command's error boundary can say where."""

from contextlib import contextmanager

SUBJECT = "emovit_subject"  # attribute `reading` sets on an exception: the file, folder or field it came from


class EmoVITInputError(ValueError):
    """Bad input, described in one sentence that names the file or field; the CLI prints it without a traceback."""


@contextmanager
def reading(subject):
    """Marks an exception raised inside with `subject` (a path, a folder, `--flag value`); the innermost mark wins.

    Nothing is caught or translated here: the entry point's boundary turns known library exceptions (decode
    errors, truncated weights, Hub and connection errors) into one sentence that starts with the subject.
    """
    try:
        yield
    except Exception as error:
        if not isinstance(error, EmoVITInputError) and getattr(error, SUBJECT, None) is None:
            try:
                setattr(error, SUBJECT, str(subject))
            except AttributeError:  # an exception type without an instance dict: left unmarked
                pass
        raise
