"""Render conversations through chat templates the way transformers does.

Usage: render.py PAYLOAD.json TEMPLATE.jinja...

PAYLOAD is {"cases": {name: {"messages": [...], "tools": [...] or "..."}}}.
Prints {template: {case: rendered text or "ERROR: <exception>"}} as JSON.
The environment copies transformers' apply_chat_template: a sandboxed
Jinja2 environment with trim_blocks, lstrip_blocks and loop controls, a
`tojson` filter that does not sort keys or escape HTML, and
`raise_exception`.
"""
import json
import os
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    payload = json.load(open(sys.argv[1]))
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    out = {}
    for path in sys.argv[2:]:
        template = env.from_string(open(path).read())
        name = os.path.basename(path)
        out[name] = {}
        for case, conv in payload["cases"].items():
            try:
                out[name][case] = template.render(messages=conv["messages"], tools=conv["tools"],
                                                  bos_token="<s>", eos_token="</s>", add_generation_prompt=False)
            except Exception as e:  # a template error is a result, not a crash
                out[name][case] = "ERROR: %s: %s" % (type(e).__name__, e)
    json.dump(out, sys.stdout)


main()
