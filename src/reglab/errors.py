"""The user's mistakes: one line naming the file, the field (or row and column), the bad value and
what is allowed. The command line prints the line and exits with status 2; nothing else does."""


class UserError(ValueError):
    """A mistake in the user's input, with a message fit to show as it is."""
