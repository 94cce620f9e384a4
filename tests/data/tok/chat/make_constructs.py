#!/usr/bin/env python3
"""Writes constructs.jsonl: small templates and the output Python Jinja2 gives for them under the
environment transformers uses for chat templates (trim_blocks, lstrip_blocks, loopcontrols, its own
tojson, raise_exception, strftime_now). Records are {"name", "template", "vars", "out"} or, when
Jinja2 raises, {"name", "template", "vars", "error"}. Needs python3-jinja2.
Run: python3 tests/data/tok/chat/make_constructs.py > tests/data/tok/chat/constructs.jsonl"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Generation(Extension):
    """{% generation %}...{% endgeneration %} as transformers' AssistantTracker parses it (the
    assistant-mask bookkeeping is left out: it does not change the text)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi  there\n"},
        {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello!", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": {"b": 1, "a": [1.5, None, True, "é\"\n"]}}}]}]
V = {"messages": MSGS, "s": "  Hello, World!  ", "n": 7, "f": 2.5, "xs": [3, 1, 2], "words": ["b", "A", "c", "a"],
     "d": {"b": 2, "a": 1, "c": None}, "e": [], "t": True, "u8": "héllo wörld ΑΒΓ абв", "people": [
         {"name": "ann", "age": 30, "tags": ["x"]}, {"name": "Bob", "age": 25}, {"name": "cy", "age": 30, "tags": []}]}

CASES = [
    # literals and rendering of values
    ("lit_str", "{{ 'a\\tb\\n\\x41\\u00e9\\\\' }}|{{ \"d'q\" }}"),
    ("lit_num", "{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 1e3 }} {{ 2.0 }} {{ 1_000 }} {{ 0.1 + 0.2 }} {{ 1e-7 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789.123 }}"),
    ("lit_const", "{{ true }} {{ True }} {{ false }} {{ none }} {{ None }}|{{ undefined_thing }}|"),
    ("repr_list", "{{ [1, 'a', 2.5, none, true, [\"x'y\"], {'k': 'v'}] }}"),
    ("repr_tuple", "{{ (1,) }} {{ (1, 'b') }} {{ () }} {{ 1, 2 }}"),
    ("repr_dict", "{{ {'a': 1, 'b': [1, 2], 3: none} }} {{ d }}"),
    ("repr_escape", "{{ ['a\\nb', 'tab\\t', 'q\\'', 'both\\'\"', '\\x01', 'é'] }}"),
    ("render_msgs", "{{ messages[0] }}"),
    # arithmetic
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}"),
    ("arith_prec", "{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ 10 - 3 - 2 }}"),
    ("concat", "{{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none ~ true ~ undefined_x }} {{ [1] + [2, 3] }} {{ 'ab' * 3 }} {{ 3 * [0] }} {{ true + 1 }}"),
    ("str_plus_int", "{{ 'a' + 1 }}"),
    ("div_zero", "{{ 1 / 0 }}"),
    ("undefined_plus", "{{ nope + 1 }}"),
    # comparisons and logic
    ("compare", "{{ 1 < 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ true == 1 }} {{ none == none }} {{ nope == nope2 }}"),
    ("compare_bad", "{{ 1 < 'a' }}"),
    ("logic", "{{ 1 and 2 }} {{ 0 and 2 }} {{ 0 or 'x' }} {{ '' or [] }} {{ not 0 }} {{ not 'a' }} {{ none or 'd' }} {{ not nope }}"),
    ("in", "{{ 'a' in 'cat' }} {{ 2 in xs }} {{ 'b' in d }} {{ 'z' not in d }} {{ 5 not in xs }} {{ 'x' in nope }}"),
    ("condexpr", "{{ 'y' if t else 'n' }} {{ 'y' if not t else 'n' }} [{{ 'y' if false }}] {{ 1 if 0 else 2 if 1 else 3 }}"),
    # access
    ("attr_item", "{{ messages[1].role }} {{ messages[1]['content'] }} {{ messages[-1].role }} {{ xs.1 }} {{ d.a }} {{ d['b'] }}"),
    ("missing_attr", "[{{ messages[0].nope }}] [{{ messages[9] }}] [{{ d.zz }}] {{ messages[0].nope is defined }} {{ none.x is defined }}"),
    ("attr_of_undefined", "{{ nope.x }}"),
    ("attr_of_missing", "{{ messages[0].nope.deeper }}"),
    ("item_of_undefined", "{{ nope[0] }}"),
    ("slice", "{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ xs[::2] }} {{ 'héllo'[1] }} {{ xs[5:] }} {{ xs[-2:] }} {{ 'abcdef'[-1:0:-2] }}"),
    ("dict_method_shadow", "{{ d.items() | list }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }}"),
    # statements
    ("set", "{% set a = 1 %}{% set b, c = 2, 3 %}{{ a }}{{ b }}{{ c }}{% set (p, q) = [4, 5] %}{{ p }}{{ q }}"),
    ("set_block", "{% set x %}Hello {{ n }}{% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}"),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for i in xs %}{% set ns.count = ns.count + i %}{% endfor %}{{ ns.count }} {{ ns.found }}"),
    ("namespace_repr", "{% set ns = namespace(a=1) %}{{ ns.a }}{{ ns.b is defined }}"),
    ("loop_scope", "{% set c = 0 %}{% for i in xs %}{% set c = c + i %}{{ c }},{% endfor %}{{ c }}"),
    ("if_scope", "{% if true %}{% set c = 5 %}{% endif %}{{ c }}"),
    ("if_elif", "{% for v in [1, 2, 3, 4] %}{% if v == 1 %}one{% elif v == 2 %}two{% elif v == 3 %}three{% else %}other{% endif %} {% endfor %}"),
    ("for_loop_vars", "{% for x in words %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}"),
    ("for_prev_next", "{% for x in xs %}[{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }}]{% endfor %}{% for x in xs %}{{ loop.previtem is defined }}{% endfor %}"),
    ("for_cycle", "{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}"),
    ("for_else", "{% for x in e %}{{ x }}{% else %}empty{% endfor %}{% for x in xs %}{{ x }}{% else %}empty{% endfor %}"),
    ("for_filter", "{% for x in xs if x > 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}"),
    ("for_dict", "{% for k in d %}{{ k }}{% endfor %} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for k, v in d | dictsort %}{{ k }}{% endfor %}"),
    ("for_string", "{% for ch in 'héj' %}[{{ ch }}]{% endfor %}"),
    ("for_nested", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }} {% endfor %}"),
    ("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    ("for_none", "{% for x in none %}{% endfor %}"),
    ("for_undefined", "{% for x in nope %}{{ x }}{% else %}none{% endfor %}"),
    ("for_unpack_bad", "{% for a, b in [[1, 2, 3]] %}{% endfor %}"),
    ("range", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}"),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(punct='.', name='c') }} {{ greet() }}"),
    ("macro_varargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}"),
    ("macro_recursive", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(5) }}"),
    ("call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ n }}{% endcall %}"),
    ("call_block_args", "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each(xs) %}[{{ x }}]{% endcall %}"),
    ("filter_block", "{% filter upper %}abc {{ n }}{% endfilter %}{% filter replace('a', 'o') | title %}banana split{% endfilter %}"),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]"),
    ("raw", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}!"),
    ("comment", "a{# a comment {{ x }} #}b{#- trimmed -#}  c"),
    ("raise", "{% if t %}{{ raise_exception('Bad role: ' ~ n) }}{% endif %}"),
    # whitespace control
    ("ws_trim_lstrip", "<ul>\n  {% for x in xs %}\n    <li>{{ x }}</li>\n  {% endfor %}\n</ul>\n"),
    ("ws_minus", "a   {{- n -}}   b\n  {%- if t -%}  \n  c  {%- endif %}\nd"),
    ("ws_plus", "a\n  {%+ if t %}x{% endif +%}\nb"),
    ("ws_var_no_trim", "{{ n }}\n{{ n }}\n  {{ n }}\n"),
    ("ws_comment_lstrip", "a\n    {# c #}\nb"),
    ("ws_inline_tag", "x {% if t %}y{% endif %} z\n"),
    ("ws_minus_unicode", "a\u00a0\u2003 {{- 'b' -}} \u3000\nc"),
    ("ws_crlf", "a\r\n{% if t %}\r\nb\r\n{% endif %}\r\nc\r\n"),
    ("ws_trailing_newline", "x\n"),
    ("ws_trailing_two", "x\n\n"),
    # tests
    ("tests_types", "{{ n is number }}{{ f is float }}{{ n is integer }}{{ t is number }}{{ t is integer }}{{ t is boolean }}{{ s is string }}{{ d is mapping }}{{ xs is sequence }}{{ xs is iterable }}{{ s is iterable }}{{ none is none }}{{ nope is undefined }}{{ n is defined }}{{ d is sequence }}{{ n is iterable }}"),
    ("tests_values", "{{ 4 is even }}{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(2) }}{{ t is true }}{{ 1 is true }}{{ false is false }}{{ 2 is eq 2 }}{{ 2 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is ge 3 }}{{ 'a' is in 'abc' }}{{ none is sameas none }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ n is not none }}"),
    ("tests_filter_test", "{{ 'upper' is filter }}{{ 'nosuch' is filter }}{{ 'even' is test }}{{ greet is callable }}{{ range is callable }}"),
    # filters
    ("f_length", "{{ xs | length }} {{ s | length }} {{ d | count }} {{ 'héllo' | length }} {{ nope | length }}"),
    ("f_tojson", "{{ messages[2].tool_calls[0].function.arguments | tojson }}|{{ d | tojson }}|{{ 'é<>&\\'' | tojson }}|{{ none | tojson }}|{{ [1.0, 1e-7, 1e20, 3] | tojson }}"),
    ("f_tojson_indent", "{{ d | tojson(indent=2) }}|{{ {'a': [1, {'b': []}], 'c': {}} | tojson(indent=2) }}|{{ xs | tojson(indent='\\t') }}"),
    ("f_tojson_opts", "{{ d | tojson(sort_keys=true) }}|{{ 'é' | tojson(ensure_ascii=true) }}|{{ d | tojson(separators=(',', ':')) }}|{{ '😀' | tojson(true) }}"),
    ("f_tojson_tuple", "{{ (1, 'a') | tojson }}{{ {1: 2, true: 3} | tojson }}"),
    ("f_tojson_undefined", "{{ nope | tojson }}"),
    ("f_trim", "[{{ s | trim }}] [{{ 'xxhixx' | trim('x') }}] [{{ '\\u3000 a \\x1c' | trim }}]"),
    ("f_case", "{{ 'hello WORLD' | upper }} {{ 'Hello' | lower }} {{ 'hello world' | capitalize }} {{ 'hello wORLD-foo bar(baz)' | title }} {{ u8 | upper }} {{ 'ÀÉÎ ΑΒΓ АБВ' | lower }}"),
    ("f_join", "{{ xs | join(', ') }} {{ words | join }} {{ people | join('/', attribute='name') }} {{ [1, none, 'a'] | join('-') }}"),
    ("f_default", "{{ nope | default('dflt') }} {{ '' | default('dflt') }} {{ '' | default('dflt', true) }} {{ none | d('x') }} {{ 0 | d('z', boolean=true) }}"),
    ("f_items", "{{ d | items | list }} {{ nope | items | list }}"),
    ("f_first_last", "{{ xs | first }} {{ xs | last }} {{ 'abc' | first }} {{ 'abc' | last }} [{{ e | first }}]"),
    ("f_list_string", "{{ 'abc' | list }} {{ d | list }} {{ 12 | string }} {{ [1] | string }} {{ none | string }}"),
    ("f_int_float", "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '0x1A' | int(0, 16) }} {{ ' 12 ' | int }} {{ '3.5' | float }} {{ 2 | float }} {{ 'q' | float }} {{ true | int }}"),
    ("f_abs_round", "{{ -3 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }} {{ 7 | round }} {{ -0.5 | round }}"),
    ("f_replace", "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'abc' | replace('', '-') }} {{ 'hello world'.replace('o', '0') }} {{ 'abc'.replace('', '.', 2) }}"),
    ("f_reverse", "{{ xs | reverse | list }} {{ 'abc' | reverse }} {{ 'héllo' | reverse }}"),
    ("f_sort", "{{ xs | sort }} {{ words | sort }} {{ words | sort(case_sensitive=true) }} {{ words | sort(reverse=true) }} {{ people | sort(attribute='age') | map(attribute='name') | list }} {{ people | sort(attribute='name') | map(attribute='name') | join(',') }}"),
    ("f_unique", "{{ [1, 2, 1, 3, 2] | unique | list }} {{ ['a', 'A', 'b'] | unique | list }} {{ ['a', 'A', 'b'] | unique(case_sensitive=true) | list }} {{ people | unique(attribute='age') | map(attribute='name') | list }}"),
    ("f_map", "{{ people | map(attribute='name') | list }} {{ words | map('upper') | list }} {{ people | map(attribute='tags', default=['d']) | list }} {{ [' a', 'b '] | map('trim') | join('|') }}"),
    ("f_map_path", "{{ people[:1] | map(attribute='tags.0') | list }} {{ messages[2:] | map(attribute='tool_calls.0.function.name') | select('defined') | list }}"),
    ("f_map_path_error", "{{ people | map(attribute='tags.0') | list }}"),
    ("f_select", "{{ range(6) | select('odd') | list }} {{ range(6) | reject('odd') | list }} {{ [0, 1, '', 'a', none] | select | list }} {{ range(10) | select('divisibleby', 3) | list }} {{ xs | select('gt', 1) | list }}"),
    ("f_selectattr", "{{ people | selectattr('age', 'equalto', 30) | map(attribute='name') | list }} {{ people | rejectattr('tags') | map(attribute='name') | list }} {{ people | selectattr('tags', 'defined') | map(attribute='name') | list }} {{ messages | selectattr('role', 'eq', 'user') | list | length }}"),
    ("f_dictsort", "{{ d | dictsort }} {{ d | dictsort(reverse=true) }} {{ {'b': 1, 'A': 2, 'a': 3} | dictsort }} {{ {'b': 1, 'A': 2, 'a': 3} | dictsort(true) }} {{ {'x': 2, 'y': 1} | dictsort(by='value') }}"),
    ("f_indent", "[{{ 'a\\nb\\n\\nc' | indent }}] [{{ 'a\\nb' | indent(2, true) }}] [{{ 'a\\n\\nb' | indent(2, blank=true) }}] [{{ 'a\\nb\\n' | indent('> ') }}] [{{ '' | indent(first=true) }}]"),
    ("f_sum_min_max", "{{ xs | sum }} {{ people | sum(attribute='age') }} {{ [1.5, 2] | sum }} {{ xs | sum(start=10) }} {{ xs | min }} {{ xs | max }} {{ words | min }} {{ words | max }} {{ words | max(case_sensitive=true) }} {{ people | max(attribute='age') }} [{{ e | max }}]"),
    ("f_wordcount", "{{ 'Hello, world! foo_bar 42' | wordcount }} {{ '' | wordcount }} {{ 'héllo wörld' | wordcount }}"),
    ("f_safe_escape", "{{ '<a href=\"x\">&\\'</a>' | e }} {{ '<b>' | safe }} {{ '<i>' | escape }}"),
    ("f_attr", "{{ d | attr('items') is callable }} [{{ d | attr('a') }}]"),
    ("f_chain", "{{ messages | map(attribute='role') | select('ne', 'system') | list | join('+') | upper }}"),
    ("f_unknown", "{{ 1 | nosuchfilter }}"),
    ("f_count_unicode", "{{ '😀👍🏽' | length }}"),
    # string methods
    ("m_startswith", "{{ s.startswith('  He') }} {{ s.endswith('!  ') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('') }}"),
    ("m_split", "{{ 'a,b,,c'.split(',') }} {{ '  a  b c '.split() }} {{ 'a b c d'.split(' ', 2) }} {{ 'a b  c'.split(none, 1) }} {{ 'abc'.split('x') }} {{ 'a<t>b</t>c'.split('</t>')[0] }} {{ '  x  y  '.split(maxsplit=1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  a b c  '.rsplit(None, 1) }}"),
    ("m_splitlines", "{{ 'a\\nb\\r\\nc\\rd'.splitlines() }} {{ 'a\\nb\\n'.splitlines(true) }}"),
    ("m_strip", "[{{ s.strip() }}] [{{ s.lstrip() }}] [{{ s.rstrip() }}] [{{ '\\n\\nx\\n\\n'.strip('\\n') }}] [{{ 'xyhixy'.strip('yx') }}] [{{ '\\n x'.lstrip('\\n') }}] [{{ 'x \\n'.rstrip('\\n') }}] [{{ '\\u3000x\\x85'.strip() }}]"),
    ("m_case", "{{ 'hello world'.upper() }} {{ 'HeLLo'.lower() }} {{ 'hello wORLD 1st'.title() }} {{ \"they're bill's\".title() }} {{ 'hELLO'.capitalize() }}"),
    ("m_find", "{{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} {{ 'héllo'.find('l') }} {{ 'banana'.count('an') }} {{ 'banana'.count('') }} {{ 'hello'.index('e') }}"),
    ("m_join_format", "{{ ', '.join(words) }} {{ '{} and {}'.format('a', 1) }} {{ '{1}{0}'.format('x', 'y') }} {{ '{name}!'.format(name='n') }} {{ '{{}}'.format() }}"),
    ("m_is", "{{ '123'.isdigit() }} {{ 'abc'.isalpha() }} {{ 'a1'.isalnum() }} {{ ' \\t'.isspace() }} {{ 'abc'.islower() }} {{ 'ABC'.isupper() }} {{ ''.isdigit() }} {{ 'a1'.isalpha() }}"),
    ("m_remove", "{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.txt'.removesuffix('.txt') }}"),
    ("m_list", "{{ xs.index(1) }} {{ [1, 1, 2].count(1) }}"),
    ("m_append_refused", "{% set l = [] %}{{ l.append(1) }}"),
    ("m_think_parse", "{% set c = messages[2].content %}{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}|{{ c.split('</think>')[-1].lstrip('\\n') }}"),
    # calls and globals
    ("dict_global", "{{ dict(a=1, b='x') }} {{ dict(a=1)['a'] }}"),
    ("strftime", "{{ strftime_now('%Y') | length }}"),
    ("call_non_callable", "{{ n() }}"),
    ("call_undefined", "{{ nope() }}"),
    ("range_too_big", "{{ range(1000000) | length }}"),
    ("printf", "{{ '%s-%d-%05.2f-%r-%x-%%' % ('a', 3, 2.5, 'q', 255) }}|{{ '%(a)s!' % {'a': 1} }}|{{ '%s' % [1, 2] }}|{{ '%5s|%-5s|%+d|%e|%g|%.3s|%03d|%o|%#x|%c' % ('ab', 'cd', 5, 12345.678, 0.0001, 'abcdef', -7, 8, 255, 'z') }}|{{ '%s' % nope }}|{{ '%d%%' % 2.9 }}"),
    ("printf_errors", "{{ '%s %s' % ('a',) }}"),
    ("printf_extra", "{{ '%s' % ('a', 'b') }}"),
    ("f_format", "{{ '%s|%s' | format(1, 'b') }} {{ '%(x)s' | format(x='kw') }} {{ '%s' | format([1]) }}"),
    ("loop_changed", "{% for x in [1, 1, 2, 2, 1] %}{{ loop.changed(x) }}{% endfor %}"),
    ("cycler_joiner", "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}{% set _ = c.reset() %}{{ c.current }}|{% set j = joiner(', ') %}{% for x in xs %}{{ j() }}{{ x }}{% endfor %}|{% set j2 = joiner() %}{{ j2() }}{{ j2() }}"),
    ("generators", "{{ 'T' if e | select else 'F' }}{{ 'T' if e | select | list else 'F' }}{{ 'T' if xs | map('string') else 'F' }}{{ 'T' if [] | reverse else 'F' }}{{ xs | select('odd') is sequence }}{{ xs | select('odd') is iterable }}{{ (xs | unique | list)[0] }}{{ xs | reverse | list }}{{ xs | reverse | reverse }}{{ (xs | select)[0] is defined }}"),
    ("generator_length", "{{ xs | select('odd') | length }}"),
    ("generator_tojson", "{{ xs | map('string') | tojson }}"),
    ("generator_last", "{{ xs | select | last }}"),
    ("slice_int", "{{ n[1:] }}"),
    ("is_lower_upper", "{{ 0 is lower }}{{ 'a1' is lower }}{{ 'A1' is upper }}{{ true is upper }}{{ none is lower }}{{ 'ß' is lower }}"),
    ("safe_undefined", "[{{ (nope | safe).upper() }}]"),
    ("indent_int", "{{ 3 | indent }}"),
    ("in_dict_unhashable", "{{ [] in d }}"),
    ("f_batch_slice", "{{ [1, 2, 3, 4, 5] | batch(2) | list }}|{{ [1, 2, 3, 4, 5] | batch(2, 0) | list }}|{{ [1, 2, 3, 4, 5] | slice(2) | list }}|{{ [1, 2, 3, 4, 5] | slice(3, 9) | list }}|{{ [] | slice(2) | list }}"),
    ("f_center", "[{{ 'abc' | center(8) }}][{{ 'abcd' | center(9) }}][{{ 'héllo' | center(2) }}][{{ 'ab' | center }}]"),
    ("f_truncate", "{{ 'hello world foo bar' | truncate(9) }}|{{ 'hello world foo bar' | truncate(9, true) }}|{{ 'hello world' | truncate(11) }}|{{ 'hello world foo' | truncate(12, end='~') }}|{{ 'hello world foo bar baz' | truncate(10, leeway=0) }}|{{ 'nospaceshere!' | truncate(5, leeway=0) }}"),
    ("f_truncate_short", "{{ 'x' | truncate(2) }}"),
    # truthiness
    ("truthy", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0, 0.1] %}{{ 'T' if v else 'F' }}{% endfor %}"),
    # more realistic fragments
    ("llama_tools", "{%- if tools is not none %}{%- for t in tools %}{{- t | tojson(indent=4) }}\n\n{%- endfor %}{%- endif %}{{- 'done' }}"),
    ("system_extract", "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}[{{ system_message }}]{{ messages | length }}"),
    ("bos", "{{ bos_token }}{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim }}{{ eos_token }}{% endfor %}"),
    ("gen_prompt", "{% if add_generation_prompt %}<|assistant|>{% endif %}"),
    ("generation_block", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content | length }}{% endgeneration %}{% endif %}{% endfor %}"),
    ("role_alternation", "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% endfor %}"),
]

CTX = dict(V, bos_token="<s>", eos_token="</s>", add_generation_prompt=True, tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
           greet=None)


def main():
    env = make_env()
    names = set()
    for name, src in CASES:
        assert name not in names, name
        names.add(name)
        ctx = {k: v for k, v in CTX.items() if v is not None}
        rec = {"name": name, "template": src, "vars": ctx}
        try:
            rec["out"] = env.from_string(src).render(**ctx)
        except Exception as e:  # noqa: BLE001 - the record notes that Jinja2 raised
            rec["error"] = type(e).__name__ + ": " + str(e)
        sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
