// A whole tool loop through the official `openai` npm client, against `llada2 serve` running the
// bundled demo model, which was trained to call a calculator tool and to answer from its result:
// request with tools -> tool call -> the tool's result -> final answer, streaming and not.
//
//   LLADA2_BASE_URL  the server's base URL, e.g. http://127.0.0.1:8080/v1 (required)
//   LLADA2_EVAL      the demo model's eval.jsonl: its tool_call problems are the questions (required)
//   LLADA2_LOOPS     how many of them to run (default 8)
//   LLADA2_MIN_OK    how many whole loops must end with the tool's result in the answer (default all)
//
// tests/openai_client_test.cc starts the server and runs this file. The model is small: it gets some
// calls wrong, so the test counts whole loops that work against a floor; everything the server sends
// must still have the OpenAI shapes, and streaming must give what non-streaming gives.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import OpenAI from "openai";

const baseURL = process.env.LLADA2_BASE_URL;
if (!baseURL) throw new Error("set LLADA2_BASE_URL to the server's base URL, e.g. http://127.0.0.1:8080/v1");
if (!process.env.LLADA2_EVAL) throw new Error("set LLADA2_EVAL to the demo model's eval.jsonl");
const loops = Number(process.env.LLADA2_LOOPS || 8);

const client = new OpenAI({ baseURL, apiKey: "no-key", maxRetries: 0, timeout: 60_000 });
const TEST_TIMEOUT = { timeout: 300_000 };

const problems = readFileSync(process.env.LLADA2_EVAL, "utf8")
  .split("\n")
  .filter((line) => line.trim())
  .map((line) => JSON.parse(line))
  .filter((p) => p.task === "tool_call")
  .slice(0, loops);
const minOk = Number(process.env.LLADA2_MIN_OK || problems.length);

let model;
const params = (messages, tools, extra = {}) => ({ model, messages, tools, temperature: 0, max_tokens: 64, ...extra });

// The calculator the model was trained to call: "A op B" on integers, exactly.
function calculator(args) {
  const m = /^\s*(\d+)\s*([-+*/])\s*(\d+)\s*$/.exec(String(args.expression ?? ""));
  if (!m) return null;
  const [a, b] = [BigInt(m[1]), BigInt(m[3])];
  if (m[2] === "/" && b === 0n) return null;
  return String({ "+": a + b, "-": a - b, "*": a * b, "/": b ? a / b : 0n }[m[2]]);
}

// The tool call of a response, checked for OpenAI's shape; null when the model answered in text.
function toolCallOf(choice) {
  if (choice.finish_reason !== "tool_calls") {
    assert.ok(!choice.message.tool_calls?.length, "tool_calls come with finish_reason tool_calls");
    return null;
  }
  const calls = choice.message.tool_calls;
  assert.ok(Array.isArray(calls) && calls.length >= 1, "finish_reason tool_calls has message.tool_calls");
  for (const c of calls) {
    assert.equal(c.type, "function");
    assert.equal(typeof c.id, "string");
    assert.ok(c.id.length > 0);
    assert.equal(c.function.name, "calculator", "only the offered tool is returned as a call");
    assert.equal(typeof c.function.arguments, "string", "arguments is a JSON string");
    JSON.parse(c.function.arguments);
  }
  return calls[0];
}

// One loop; `stream` sends both requests streaming. What each step gave, for the comparisons.
async function runLoop(problem, stream) {
  const ask = async (messages) => {
    const p = params(messages, problem.tools);
    if (!stream) return (await client.chat.completions.create(p)).choices[0];
    const s = client.chat.completions.stream(p);
    let deltas = 0;
    s.on("chunk", (chunk) => {
      if (chunk.choices[0]?.delta?.tool_calls?.length) deltas++;
    });
    const choice = (await s.finalChatCompletion()).choices[0];
    if (choice.finish_reason === "tool_calls") assert.ok(deltas > 0, "a streamed tool call comes as delta.tool_calls");
    return choice;
  };
  const messages = [...problem.messages];
  const first = await ask(messages);
  const call = toolCallOf(first);
  if (!call) return { call: null, text: first.message.content };
  const result = calculator(JSON.parse(call.function.arguments));
  if (result === null) return { call: call.function, text: null };
  messages.push(first.message, { role: "tool", tool_call_id: call.id, content: result });
  const second = await ask(messages);
  assert.equal(second.finish_reason, "stop", "the answer after the tool's result ends by itself");
  assert.ok(!second.message.tool_calls?.length, "no second call after the result");
  return { call: call.function, result, text: second.message.content };
}

test("the model id", TEST_TIMEOUT, async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  model = list.data[0].id;
});

test("tool loops: request with tools, tool call, tool result, final answer (streaming and not)", TEST_TIMEOUT, async () => {
  assert.ok(problems.length > 0, "the eval file has tool_call problems");
  let ok = 0;
  const report = [];
  for (const problem of problems) {
    const plain = await runLoop(problem, false);
    const streamed = await runLoop(problem, true);
    assert.deepEqual(streamed.call?.name, plain.call?.name, "streaming calls what non-streaming calls");
    assert.deepEqual(streamed.call?.arguments, plain.call?.arguments);
    assert.equal(streamed.text, plain.text, "streaming answers what non-streaming answers");
    const good = plain.result !== undefined && typeof plain.text === "string" && plain.text.includes(plain.result);
    if (good) ok++;
    report.push(`${good ? "ok  " : "MISS"} ${problem.messages[0].content} -> ${JSON.stringify(plain.call)} -> ${plain.text}`);
  }
  console.log(report.join("\n"));
  assert.ok(ok >= minOk, `${ok} of ${problems.length} whole tool loops ended with the tool's result (floor ${minOk})`);
});

test("tool_choice none never gives a tool call", TEST_TIMEOUT, async () => {
  const problem = problems[0];
  const r = await client.chat.completions.create(params(problem.messages, problem.tools, { tool_choice: "none" }));
  assert.notEqual(r.choices[0].finish_reason, "tool_calls");
  assert.ok(!r.choices[0].message.tool_calls?.length);
});
