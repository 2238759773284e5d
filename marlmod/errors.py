"""The one exception type the CLI turns into a single clear line instead of a traceback."""


class MarlmodError(Exception):
    """A problem with the user's input (config, files, names) rather than a bug in marlmod."""
