#!/usr/bin/env python3
"""Writes random.jsonl: randomly generated templates (expressions over filters, tests, methods and
operators; statement soups with every whitespace-control marker) and the output Python Jinja2 gives
under transformers' environment, in the format of constructs.jsonl.

The filters that return generators are made eager here (they still return an iterator), so that
their errors surface when the filter runs, as this engine's do; Jinja2 proper raises them only when
the generator is consumed. Left out: outputs that print a Python object's address (generators,
iterators, range objects) or a Markup.
Run: python3 tests/data/tok/chat/make_random.py > tests/data/tok/chat/random.jsonl"""
import copy
import functools
import json
import random
import sys

from make_constructs import make_env

VARS = {"s": " Hello, World ", "n": 7, "f": -2.5, "xs": [3, 1, 2], "ws": ["b", "A", "c"], "d": {"b": 2, "a": 1},
        "e": [], "t": True, "z": None, "u": "h\u00e9llo\nw\u00f6rld", "ps": [{"name": "x", "age": 3}, {"name": "Y", "age": 1}]}
ATOMS = ["s", "n", "f", "xs", "ws", "d", "e", "t", "z", "u", "ps", "nope", "0", "1", "-3", "2.5", "1e3", "'a'", "''",
         "'x,y'", "\"q'\"", "[]", "[1, 2]", "['b', 'a']", "{}", "{'k': 1}", "none", "true", "false", "(1, 2)",
         "ps[0]", "xs[-1]", "d.a", "u[1:4]", "s[::-1]", "'\\n a \\t'"]
FILTERS = ["length", "tojson", "trim", "upper", "lower", "capitalize", "title", "first", "last", "list", "string",
           "int", "float", "abs", "reverse", "sort", "unique", "join", "join(',')", "default('D')",
           "default('D', true)", "items", "dictsort", "sum", "min", "max", "wordcount", "indent(2)", "round",
           "round(1)", "replace('l', 'L')", "map('string')", "map(attribute='name')", "select", "reject",
           "select('odd')", "selectattr('age')", "tojson(indent=1)", "count", "e", "safe", "format"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
         "boolean", "true", "false", "even", "odd", "divisibleby(2)", "eq(1)", "ne 'a'", "lt(3)", "in([1, 'a'])",
         "sameas(none)", "callable", "lower", "upper"]
METHODS = [".upper()", ".lower()", ".strip()", ".strip('H ')", ".split()", ".split(',')", ".startswith('H')",
           ".endswith('d ')", ".title()", ".capitalize()", ".find('l')", ".count('l')", ".replace('o', '0')",
           ".lstrip()", ".rstrip()", ".get('a')", ".items()", ".keys()", ".values()", ".get('zz', 3)", ".index(1)",
           ".isdigit()", ".splitlines()", ".rsplit(',', 1)"]
BINOPS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "and", "or"]


def eager(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        return iter(list(fn(*args, **kwargs)))
    return run


def expr(d=0):
    r = random.random()
    if d > 3 or r < 0.25:
        return random.choice(ATOMS)
    if r < 0.4:
        return expr(d + 1) + " | " + random.choice(FILTERS)
    if r < 0.5:
        return "(" + expr(d + 1) + ") is " + random.choice(["", "not "]) + random.choice(TESTS)
    if r < 0.6:
        return "(" + expr(d + 1) + ")" + random.choice(METHODS)
    if r < 0.8:
        return "(" + expr(d + 1) + " " + random.choice(BINOPS) + " " + expr(d + 1) + ")"
    if r < 0.85:
        return "not " + expr(d + 1)
    if r < 0.9:
        return "(" + expr(d + 1) + " if " + expr(d + 1) + " else " + expr(d + 1) + ")"
    if r < 0.95:
        return "[" + expr(d + 1) + ", " + expr(d + 1) + "]"
    return "(" + expr(d + 1) + ")[" + random.choice(["0", "-1", "1:", "::-1", "'a'", "'name'"]) + "]"


def ws():
    return random.choice(["", " ", "  ", "\n", "\n  ", "  \n", "\t", "\n\n", " \n \n", "x", "\n  x  \n"])


def tag_open():
    return random.choice(["{%", "{%-", "{%+", "{% "])


def tag_close():
    return random.choice(["%}", "-%}", "+%}", " %}"])


def stmt_expr():
    return random.choice(["x", "n", "xs", "s", "'lit'", "x ~ '!'", "d.a", "ns.v", "t", "y",
                          "x * 2 if x is number else x"])


def cond():
    return random.choice(["t", "not t", "x > 1", "n == 2", "x in xs", "e", "s.startswith('a')", "ns.v > 1"])


def body(d=0):
    o, c = tag_open, tag_close
    parts = []
    for _ in range(random.randint(1, 4)):
        r = random.random()
        parts.append(ws())
        if d > 2 or r < 0.3:
            parts.append(random.choice(["{{", "{{-", "{{ "]) + " " + stmt_expr() + " " + random.choice(["}}", "-}}", " }}"]))
        elif r < 0.45:
            parts.append(o() + " if " + cond() + " " + c() + body(d + 1) +
                         random.choice(["", o() + " elif " + cond() + " " + c() + body(d + 1)]) +
                         random.choice(["", o() + " else " + c() + body(d + 1)]) + o() + " endif " + c())
        elif r < 0.6:
            parts.append(o() + " for x in " + random.choice(["xs", "ws", "s", "e", "range(n)", "d"]) +
                         random.choice(["", " if x != 1"]) + " " + c() + body(d + 1) +
                         random.choice(["", o() + " else " + c() + "empty"]) + o() + " endfor " + c())
        elif r < 0.7:
            parts.append(o() + " set y = " + stmt_expr() + " " + c())
        elif r < 0.75:
            parts.append(o() + " set ns.v = ns.v + 1 " + c())
        elif r < 0.82:
            parts.append(random.choice(["{#", "{#-"]) + " comment " + random.choice(["#}", "-#}"]))
        elif r < 0.87:
            parts.append(o() + " raw " + random.choice(["%}", "-%}", " %}"]) + "{{ raw }}" + ws() + o() + " endraw " + c())
        elif r < 0.92:
            parts.append(o() + " if loop is defined and loop.index > 1 " + c() + o() + " break " + c() + o() + " endif " + c())
        else:
            parts.append(o() + " macro m(a, b='B') " + c() + ws() + "[{{ a }}{{ b }}]" + ws() + o() + " endmacro " +
                         c() + "{{ m(" + stmt_expr() + ") }}")
        parts.append(ws())
    return "".join(parts)


def keep(src, rec):
    out = rec.get("out", "")
    if any(k in out for k in (" at 0x", "range(", "Markup(")):
        return False
    err = rec.get("error", "")
    return "Markup" not in err


def main():
    random.seed(20261127)
    env = make_env()
    for name in ("map", "select", "reject", "selectattr", "rejectattr", "unique", "items"):
        env.filters[name] = eager(env.filters[name])
    n = 0
    cases = [("expr", "{{ " + expr() + " }}") for _ in range(1500)]
    for _ in range(500):
        t = "{% set ns = namespace(v=0) %}" + body()
        if random.random() < 0.3:
            t += "\n"
        if random.random() < 0.2:
            t = t.replace("\n", "\r\n")
        cases.append(("stmt", t))
    for kind, src in cases:
        rec = {"name": "%s_%d" % (kind, n), "template": src,
               "vars": dict(VARS, messages=[], tools=None, add_generation_prompt=False)}
        try:
            rec["out"] = env.from_string(src).render(**copy.deepcopy(rec["vars"]))
        except Exception as e:  # noqa: BLE001 - the record notes that Jinja2 raised
            rec["error"] = type(e).__name__ + ": " + str(e)
        if keep(src, rec):
            sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1


if __name__ == "__main__":
    main()
