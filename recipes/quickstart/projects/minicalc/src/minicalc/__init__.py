"""minicalc: a small expression calculator."""
from minicalc.errors import CalcError
from minicalc.lexer import Token, tokenize
from minicalc.parser import to_rpn
from minicalc.evaluator import evaluate_rpn, Calculator

__all__ = ["CalcError", "Token", "tokenize", "to_rpn", "evaluate_rpn", "Calculator"]
