"""`${{ }}` expressions, evaluated by GitHub's own engine (npm @actions/expressions).

One Node process per runner serves every expression (tests/workflow_parser/evaluate.mjs);
this module finds the expressions in workflow values and asks it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

PARSER_DIR = Path(__file__).resolve().parent.parent / "workflow_parser"
# `${{ ... }}`, shortest match; GitHub's own rule, strings with `}}` inside are not used here
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.DOTALL)
STATUS_FUNCTIONS = re.compile(r"\b(success|failure|cancelled|always)\s*\(", re.IGNORECASE)


class ExpressionError(Exception):
    """An expression GitHub would refuse, or one that failed to evaluate."""


class Expressions:
    """The expression engine, started once and fed one request per line."""

    def __init__(self) -> None:
        if not (PARSER_DIR / "node_modules" / "@actions" / "expressions").is_dir():
            raise RuntimeError(f"run `npm ci --prefix {PARSER_DIR}` first")
        self._node = subprocess.Popen(
            ["node", "--import", "./register.mjs", "evaluate.mjs"],
            cwd=PARSER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def close(self) -> None:
        assert self._node.stdin is not None and self._node.stdout is not None
        self._node.stdin.close()
        self._node.wait(timeout=10)
        self._node.stdout.close()

    def _ask(self, expression: str, contexts: dict[str, Any], status: str) -> dict[str, Any]:
        assert self._node.stdin is not None and self._node.stdout is not None
        request = {"expression": expression, "contexts": contexts, "status": status}
        self._node.stdin.write(json.dumps(request) + "\n")
        self._node.stdin.flush()
        reply: dict[str, Any] = json.loads(self._node.stdout.readline())
        if "error" in reply:
            raise ExpressionError(f"${{{{ {expression} }}}}: {reply['error']}")
        return reply

    def condition(self, text: Any, contexts: dict[str, Any], status: str) -> bool:
        """An `if:` as GitHub decides it: without a status function it means
        `success() && (...)`; the `${{ }}` around it is optional."""
        if isinstance(text, bool):
            return text and status == "success"
        expression = str(text).strip()
        whole = EXPRESSION.fullmatch(expression)
        if whole:
            expression = whole[1]
        if not STATUS_FUNCTIONS.search(expression):
            expression = f"success() && ({expression})"
        return bool(self._ask(expression, contexts, status)["truthy"])

    def value(self, value: Any, contexts: dict[str, Any], status: str = "success") -> Any:
        """``value`` with its expressions evaluated: a string that is one expression keeps
        the expression's type; expressions inside a longer string become text."""
        if isinstance(value, dict):
            return {k: self.value(v, contexts, status) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, contexts, status) for v in value]
        if not isinstance(value, str) or "${{" not in value:
            return value
        whole = EXPRESSION.fullmatch(value.strip())
        if whole:
            return self._ask(whole[1], contexts, status)["value"]
        return EXPRESSION.sub(lambda m: self._ask(m[1], contexts, status)["text"], value)

    def text(self, value: Any, contexts: dict[str, Any], status: str = "success") -> str:
        """``value`` evaluated and written as a string, as GitHub passes inputs and env."""
        found = self.value(value, contexts, status)
        if found is None:
            return ""
        if isinstance(found, bool):
            return "true" if found else "false"
        if isinstance(found, float) and found.is_integer():
            return str(int(found))
        if isinstance(found, dict | list):
            return json.dumps(found, indent=2)
        return str(found)
