"""The user's mistakes: one line naming the file, the field (or row and column), the bad value and
what is allowed. The command line prints the line and exits with status 2; nothing else does."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in the user's input: ``problem`` (what is wrong: the value and what is allowed)
    and, where known, where it is: the ``file`` and the ``field`` in it. Its text, shown as it
    is, is ``"<file>: <field>: <problem>"`` with the parts that are known.

    Code that knows more of the location adds it (:meth:`in_file`) instead of reading the text
    back: the planner names the experiment file of a mistake in one of its fields; the playground
    names an uploaded file as the page did.
    """

    def __init__(self, problem: str, *, file: str | None = None, field: str | None = None) -> None:
        self.problem, self.file, self.field = problem, file, field
        super().__init__(": ".join(str(part) for part in (file, field, problem) if part is not None))

    def in_file(self, file: str, *, replace: bool = False) -> UserError:
        """This mistake located in ``file``; one that names its file already keeps it, unless
        ``replace``."""
        if self.file is not None and not replace:
            return self
        return UserError(self.problem, file=file, field=self.field)
