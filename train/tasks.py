"""The demo model's tasks: generated questions with checkable answers.

Each example is a conversation (messages, optional tools) whose last turn the model must produce, the
expected answer and the matcher that checks it (the matchers of `llada2 eval`):
  add_sub      "What is 4821 + 739?"   -> "4821 + 0739 = 05560, so 4821 + 739 = 5560."             (number)
  multiply     "What is 52 * 17?"      -> "52 * 7 = 364, 52 * 1 = 052, 0364 + 0520 = 0884, so 52 * 17 = 884." (number)
  sort         "Sort these numbers: 42, 7, 913"     -> "7, 42, 913"                  (exact)
  sudoku       a 4x4 grid, 0 = empty                -> the solved grid               (sudoku: expected = the puzzle)
  tool_call    a calculator tool is offered         -> <tool_call>...</tool_call>    (json: the call's JSON)
  tool_answer  after the tool's <tool_response>     -> "48213 * 7391 = 356342283."   (number)

The arithmetic answers first work the problem in fixed-width, zero-padded columns: every digit of the
work then sits at the same distance from the digits it depends on, whatever the lengths of the numbers,
so the model learns one local rule per column instead of locating digits by counting. The answer ends
with the plain sentence (the `number` matcher reads the last number).

Held-out problems are chosen by a hash of the problem itself (about 1 in 20 of each task's problem space),
so training never sees a problem of the held-out sets, whatever seed it runs with.
"""

import hashlib
import itertools
import json
import random

import numpy as np

TASKS = ["add_sub", "multiply", "sort", "sudoku", "tool_call", "tool_answer"]

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression and return the exact result.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. 48213 * 7391"}},
            "required": ["expression"],
        },
    },
}


def held_out(key):
    """True for the problems reserved for evaluation (about 5%)."""
    return hashlib.sha256(key.encode()).digest()[0] < 13


def rand_number(rng, max_digits):
    digits = rng.randint(1, max_digits)
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(lo, 10**digits - 1)


ADD_FORMS = ["What is {a} + {b}?", "What is {a} plus {b}?", "Compute {a} + {b}.", "Calculate {a} + {b}.",
             "{a} + {b} = ?", "How much is {a} + {b}?", "What's the sum of {a} and {b}?", "Add {a} and {b}."]
SUB_FORMS = ["What is {a} - {b}?", "What is {a} minus {b}?", "Compute {a} - {b}.", "Calculate {a} - {b}.",
             "{a} - {b} = ?", "How much is {a} - {b}?", "Subtract {b} from {a}.", "What is {b} subtracted from {a}?"]
MUL_FORMS = ["What is {a} * {b}?", "What is {a} times {b}?", "Compute {a} * {b}.", "Calculate {a} x {b}.",
             "{a} * {b} = ?", "How much is {a} * {b}?", "What is the product of {a} and {b}?", "Multiply {a} by {b}."]
SORT_FORMS = ["Sort these numbers: {l}", "Sort these numbers in ascending order: {l}",
              "Put these numbers in increasing order: {l}", "Order from smallest to largest: {l}",
              "Sort {l}", "Can you sort this list? {l}"]
SUDOKU_FORMS = ["Solve this 4x4 sudoku (0 marks an empty cell):\n{g}", "Fill in the sudoku (0 = empty):\n{g}",
                "Complete this 4x4 sudoku grid. Empty cells are 0.\n{g}", "Solve the sudoku:\n{g}"]
TOOL_FORMS = ["What is {e}?", "Compute {e}.", "Calculate {e}.", "Use the calculator: {e}", "How much is {e}?",
              "What does {e} come to?"]


def add_sub(rng):
    a, b = rand_number(rng, 4), rand_number(rng, 4)
    op = rng.choice("+-")
    if op == "-" and a < b:
        a, b = b, a
    c = a + b if op == "+" else a - b
    form = rng.choice(ADD_FORMS if op == "+" else SUB_FORMS)
    work = f"{a:04d} {op} {b:04d} = {c:05d}, so {a} {op} {b} = {c}."
    return f"{a}{op}{b}", [{"role": "user", "content": form.format(a=a, b=b)}], work, str(c)


def multiply(rng):
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    c = a * b
    tens, units = b // 10, b % 10
    work = (f"{a} * {units} = {a * units:03d}, {a} * {tens} = {a * tens:03d}, "
            f"{a * units:04d} + {a * tens:03d}0 = {c:04d}, so {a} * {b} = {c}.")
    return f"{a}*{b}", [{"role": "user", "content": rng.choice(MUL_FORMS).format(a=a, b=b)}], work, str(c)


def sort_list(rng):
    k = rng.randint(2, 8)
    xs = [rand_number(rng, 3) for _ in range(k)]
    answer = ", ".join(str(x) for x in sorted(xs))
    question = rng.choice(SORT_FORMS).format(l=", ".join(str(x) for x in xs))
    return "sort" + ",".join(map(str, xs)), [{"role": "user", "content": question}], answer, answer


def _sudoku_grids():
    rows = list(itertools.permutations(range(1, 5)))
    grids = []
    for g in itertools.product(rows, repeat=4):
        if any(len({g[r][c] for r in range(4)}) != 4 for c in range(4)):
            continue
        if any(len({g[r][c] for r in (br, br + 1) for c in (bc, bc + 1)}) != 4 for br in (0, 2) for bc in (0, 2)):
            continue
        grids.append(g)
    return grids


SUDOKU_GRIDS = _sudoku_grids()  # all 288 solved 4x4 grids
_GRID_ARRAY = np.array([[v for row in g for v in row] for g in SUDOKU_GRIDS])


def grid_text(cells):
    return "\n".join("".join(str(v) for v in cells[r * 4:r * 4 + 4]) for r in range(4))


def sudoku(rng):
    grid = [v for row in rng.choice(SUDOKU_GRIDS) for v in row]
    order = list(range(16))
    rng.shuffle(order)
    blanks = rng.randint(4, 10)
    puzzle = grid[:]
    removed = 0
    for i in order:  # blank cells while the solution stays unique
        if removed == blanks:
            break
        trial = puzzle[:]
        trial[i] = 0
        t = np.array(trial)
        if int(np.all((t == 0) | (_GRID_ARRAY == t), axis=1).sum()) == 1:
            puzzle, removed = trial, removed + 1
    text = grid_text(puzzle)
    question = rng.choice(SUDOKU_FORMS).format(g=text)
    return "sudoku" + text, [{"role": "user", "content": question}], grid_text(grid), text


def _tool_problem(rng):
    a, b = rng.randint(1000, 99999), rng.randint(100, 9999)
    op = rng.choice(["*", "*", "/", "+", "-"])
    if op == "-" and a < b:
        a, b = b, a
    if op == "/":
        a = a * b  # exact division
        result = a // b
    else:
        result = {"*": a * b, "+": a + b, "-": a - b}[op]
    return f"{a} {op} {b}", str(result)


def tool_call_json(expression):
    return {"name": "calculator", "arguments": {"expression": expression}}


def render_tool_call(expression):
    # The assistant text the chat template renders for one tool call (message.tool_calls).
    return '<tool_call>\n{"name": "calculator", "arguments": ' + json.dumps({"expression": expression}) + "}\n</tool_call>"


def tool_call(rng):
    expr, _ = _tool_problem(rng)
    msgs = [{"role": "user", "content": rng.choice(TOOL_FORMS).format(e=expr)}]
    return "tool" + expr, msgs, render_tool_call(expr), tool_call_json(expr)


def tool_answer(rng):
    expr, result = _tool_problem(rng)
    call = {"type": "function", "function": {"name": "calculator", "arguments": json.dumps({"expression": expr})}}
    msgs = [{"role": "user", "content": rng.choice(TOOL_FORMS).format(e=expr)},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": result}]
    return "tool" + expr, msgs, f"{expr} = {result}.", result


GENERATORS = {"add_sub": add_sub, "multiply": multiply, "sort": sort_list, "sudoku": sudoku, "tool_call": tool_call,
              "tool_answer": tool_answer}
MATCHERS = {"add_sub": "number", "multiply": "number", "sort": "exact", "sudoku": "sudoku", "tool_call": "json",
            "tool_answer": "number"}


def example(task, rng, want_held_out):
    """One example of `task` whose problem is (want_held_out) or is not reserved for evaluation."""
    while True:
        key, msgs, answer, expected = GENERATORS[task](rng)
        if held_out(key) == want_held_out:
            ex = {"task": task, "messages": msgs, "answer": answer, "expected": expected, "match": MATCHERS[task]}
            if task.startswith("tool"):
                ex["tools"] = [CALCULATOR]
            return ex


def multi_turn(rng):
    """A held-out question of a short task after one to three answered exchanges (training problems):
    the answer must be the last question's, whatever the conversation before it."""
    ex = example(rng.choice(["add_sub", "multiply", "sort"]), rng, True)
    return dict(ex, task="multi_turn", messages=history(rng) + ex["messages"])


def history(rng):
    """One to three answered exchanges of training problems: the start of a conversation."""
    out = []
    for _ in range(rng.randint(1, 3)):
        h = example(rng.choice(["add_sub", "multiply", "sort", "sudoku"]), rng, False)
        out += h["messages"] + [{"role": "assistant", "content": h["answer"]}]
    return out


def eval_set(n_per_task, seed=20261206):
    """The held-out evaluation lines of `llada2 eval` (models/llada2-demo/eval.jsonl): every task's, then
    `multi_turn` (a held-out question at the end of a conversation)."""
    out = []
    for ti, task in enumerate(TASKS + ["multi_turn"]):
        rng = random.Random(seed * 31 + ti)
        seen = set()
        while sum(1 for e in out if e["task"] == task) < n_per_task:
            ex = multi_turn(rng) if task == "multi_turn" else example(task, rng, True)
            key = json.dumps(ex["messages"])
            if key in seen:
                continue
            seen.add(key)
            line = {"task": task, "messages": ex["messages"], "expected": ex["expected"], "match": ex["match"]}
            if "tools" in ex:
                line["tools"] = ex["tools"]
            out.append(line)
    return out
