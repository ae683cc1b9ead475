"""The one error type minicalc raises for bad input."""


class CalcError(Exception):
    """An expression could not be tokenized, parsed or evaluated.

    position is the character offset of the problem, or -1 when unknown.
    """

    def __init__(self, message, position=-1):
        super().__init__(message)
        self.position = position
