// Tests of a running `llada2 serve` through the official `openai` npm client.
//
//   LLADA2_BASE_URL  the server's base URL, e.g. http://127.0.0.1:8080/v1 (required)
//   LLADA2_API_KEY   the key the server was started with (--api-key); any string if it has none
//   LLADA2_MODEL     optional: the model id the server must report
//
// Run: (cd tests/js && npm ci) then LLADA2_BASE_URL=... node --test tests/js/openai_client.test.mjs
// tests/openai_client_test.cc starts a server on a tiny random model and runs this file. The model
// writes nonsense, so the tests compare the server with itself (streaming vs not, concurrent vs alone,
// stop strings vs the uncut text) and check the shapes the client sees. Tests run one after another.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import OpenAI from "openai";

const baseURL = process.env.LLADA2_BASE_URL;
const apiKey = process.env.LLADA2_API_KEY || "no-key";
if (!baseURL) throw new Error("set LLADA2_BASE_URL to the server's base URL, e.g. http://127.0.0.1:8080/v1");
const healthURL = new URL("/health", baseURL).href;

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const TEST_TIMEOUT = { timeout: 30_000 };
// A test that makes many requests one after another: ~1.8 s each in a sanitizer build on 2 AVX2 cores.
const LONG_TEST_TIMEOUT = { timeout: 120_000 };

let model = process.env.LLADA2_MODEL;

// Small, fast generations: the LLaDA2 extras go in the body next to the OpenAI fields.
const FAST = { max_tokens: 24, block_length: 16, steps: 16, temperature: 0, seed: 1 };
const MESSAGES = [{ role: "user", content: "What is a diffusion language model?" }];
const PROMPT = "The three primary colours are";

const chatParams = (extra = {}) => ({ model, messages: MESSAGES, ...FAST, ...extra });
const completionParams = (extra = {}) => ({ model, prompt: PROMPT, ...FAST, ...extra });

// Reference answers, filled by the first tests and compared against by the later ones.
const ref = {};

async function health() {
  const r = await fetch(healthURL);
  assert.equal(r.status, 200);
  return r.json();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function checkUsage(usage, maxCompletion) {
  assert.ok(usage, "usage is present");
  assert.ok(Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0, `prompt_tokens ${usage.prompt_tokens}`);
  assert.ok(Number.isInteger(usage.completion_tokens) && usage.completion_tokens >= 0);
  assert.ok(usage.completion_tokens <= maxCompletion, `completion_tokens ${usage.completion_tokens} > ${maxCompletion}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

function checkDiffusion(d) {
  assert.equal(typeof d, "object", "the `diffusion` extra object is present");
  assert.ok(d !== null);
  assert.ok(Number.isInteger(d.forwards) && d.forwards > 0, `forwards ${d.forwards}`);
  assert.equal(typeof d.tokens_per_forward, "number");
  assert.ok(d.tokens_per_forward >= 0);
  assert.equal(typeof d.seconds, "number");
  assert.ok(d.seconds >= 0);
}

// Iterates a chat stream; returns the joined text per choice and what the chunks said about it.
async function collectChat(stream) {
  const text = {}, finish = {}, roles = {};
  let usage, diffusion, id, chunks = 0;
  for await (const chunk of stream) {
    ++chunks;
    assert.equal(chunk.object, "chat.completion.chunk");
    assert.equal(chunk.model, model);
    id ??= chunk.id;
    assert.equal(chunk.id, id, "every chunk has the same id");
    for (const c of chunk.choices) {
      assert.ok(!(c.index in finish), `choice ${c.index} got a chunk after its finish_reason`);
      if (c.delta.role !== undefined) {
        assert.equal(c.delta.role, "assistant");
        assert.ok(!(c.index in text), "the role comes in the first chunk of a choice");
        roles[c.index] = c.delta.role;
      }
      text[c.index] = (text[c.index] ?? "") + (c.delta.content ?? "");
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
    if (chunk.diffusion) diffusion = chunk.diffusion;
  }
  return { text, finish, roles, usage, diffusion, id, chunks };
}

async function collectCompletion(stream) {
  const text = {}, finish = {};
  let usage, diffusion, id;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "text_completion");
    assert.equal(chunk.model, model);
    id ??= chunk.id;
    assert.equal(chunk.id, id, "every chunk has the same id");
    for (const c of chunk.choices) {
      assert.ok(!(c.index in finish), `choice ${c.index} got a chunk after its finish_reason`);
      text[c.index] = (text[c.index] ?? "") + c.text;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
    if (chunk.diffusion) diffusion = chunk.diffusion;
  }
  return { text, finish, usage, diffusion, id };
}

// Expects `promise` to reject with the client's error class `cls` and HTTP `status`.
async function expectApiError(promise, cls, status, fields = {}) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
    assert.ok(err instanceof OpenAI.APIError);
    assert.equal(err.status, status);
    for (const [k, v] of Object.entries(fields)) assert.equal(err[k], v, `error.${k}`);
    assert.equal(typeof err.message, "string");
    return true;
  });
}

before(async () => {
  const h = await health();
  assert.equal(h.status, "ok");
});

test("models.list and models.retrieve", TEST_TIMEOUT, async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.object, "model");
    assert.equal(typeof m.owned_by, "string");
    assert.ok(Number.isInteger(m.created));
    ids.push(m.id);
  }
  assert.equal(ids.length, 1, `one model: ${ids}`);
  if (model) assert.equal(ids[0], model);
  model = ids[0];
  const m = await client.models.retrieve(model);
  assert.equal(m.id, model);
  await expectApiError(client.models.retrieve("no-such-model"), OpenAI.NotFoundError, 404, { code: "model_not_found" });
});

test("chat.completions non-streaming", TEST_TIMEOUT, async () => {
  const r = await client.chat.completions.create(chatParams());
  assert.equal(r.object, "chat.completion");
  assert.ok(r.id.startsWith("chatcmpl-"), r.id);
  assert.equal(r.model, model);
  assert.ok(Number.isInteger(r.created));
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, "assistant");
  assert.equal(typeof c.message.content, "string");
  assert.ok(c.message.content.length > 0, "the tiny model writes something");
  assert.ok(["stop", "length"].includes(c.finish_reason), c.finish_reason);
  checkUsage(r.usage, FAST.max_tokens);
  if (c.finish_reason === "length") assert.equal(r.usage.completion_tokens, FAST.max_tokens);
  checkDiffusion(r.diffusion);
  ref.chat = r;

  // The same seed and temperature 0 give the same text; content parts are joined like a string.
  const again = await client.chat.completions.create(
    chatParams({ messages: [{ role: "user", content: [{ type: "text", text: MESSAGES[0].content }] }] }));
  assert.equal(again.choices[0].message.content, c.message.content);
  assert.deepEqual(again.usage, r.usage);
  assert.notEqual(again.id, r.id, "each response has its own id");
});

test("chat.completions streaming equals non-streaming", TEST_TIMEOUT, async () => {
  const stream = await client.chat.completions.create(chatParams({ stream: true }));
  const s = await collectChat(stream);
  assert.ok(s.chunks >= 3, `role chunk, text, finish chunk: got ${s.chunks}`);
  assert.deepEqual(s.roles, { 0: "assistant" });
  assert.equal(s.text[0], ref.chat.choices[0].message.content);
  assert.deepEqual(s.finish, { 0: ref.chat.choices[0].finish_reason });
  assert.deepEqual(s.usage, ref.chat.usage);
  checkDiffusion(s.diffusion);
  assert.ok(s.id.startsWith("chatcmpl-"));

  // The client's stream helper, which assembles the chunks into a chat.completion.
  let deltas = "";
  const helper = client.chat.completions.stream(chatParams());
  helper.on("content", (delta) => { deltas += delta; });
  const final = await helper.finalChatCompletion();
  assert.equal(final.choices[0].message.role, "assistant");
  assert.equal(final.choices[0].message.content, ref.chat.choices[0].message.content);
  assert.equal(final.choices[0].finish_reason, ref.chat.choices[0].finish_reason);
  assert.equal(deltas, ref.chat.choices[0].message.content);
});

test("tools, tool_choice and a tool loop's messages through the client", TEST_TIMEOUT, async () => {
  const tools = [{ type: "function", function: { name: "get_time", description: "Current time",
                                                 parameters: { type: "object", properties: {} } } }];
  const r = await client.chat.completions.create(chatParams({ tools }));
  assert.equal(r.choices[0].message.role, "assistant");
  assert.ok(["stop", "length", "tool_calls"].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
  const loop = [
    { role: "user", content: "What time is it?" },
    { role: "assistant", content: null,
      tool_calls: [{ id: "call_1", type: "function", function: { name: "get_time", arguments: "{}" } }] },
    { role: "tool", tool_call_id: "call_1", content: "12:30" },
  ];
  const after = await client.chat.completions.create(chatParams({ tools, messages: loop }));
  assert.ok(after.usage.prompt_tokens > r.usage.prompt_tokens, "the call and its result are in the prompt");
  // Streamed, the client's helper assembles the same message.
  const final = await client.chat.completions.stream(chatParams({ tools, messages: loop })).finalChatCompletion();
  assert.equal(final.choices[0].message.content, after.choices[0].message.content);
  assert.equal(final.choices[0].finish_reason, after.choices[0].finish_reason);
  await expectApiError(client.chat.completions.create(chatParams({ messages: [{ role: "wizard", content: "hi" }] })),
                       OpenAI.BadRequestError, 400, { param: "messages" });
  await expectApiError(
    client.chat.completions.create(chatParams({ tools, tool_choice: { type: "function", function: { name: "nope" } } })),
    OpenAI.BadRequestError, 400, { param: "tool_choice" });
});

test("completions non-streaming and streaming", TEST_TIMEOUT, async () => {
  const r = await client.completions.create(completionParams());
  assert.equal(r.object, "text_completion");
  assert.ok(r.id.startsWith("cmpl-"), r.id);
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(typeof r.choices[0].text, "string");
  assert.ok(r.choices[0].text.length > 0);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  checkUsage(r.usage, FAST.max_tokens);
  checkDiffusion(r.diffusion);
  ref.completion = r;

  const s = await collectCompletion(await client.completions.create(completionParams({ stream: true })));
  assert.equal(s.text[0], r.choices[0].text);
  assert.deepEqual(s.finish, { 0: r.choices[0].finish_reason });
  assert.deepEqual(s.usage, r.usage);
  checkDiffusion(s.diffusion);

  // A list of prompts: one choice per prompt, in order.
  const two = await client.completions.create(completionParams({ prompt: [PROMPT, "Once upon a time"] }));
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
  assert.equal(two.choices[0].text, r.choices[0].text);
  checkUsage(two.usage, 2 * FAST.max_tokens);
});

test("n: 2 gives two choices, each equal to the n: 1 answer at temperature 0", TEST_TIMEOUT, async () => {
  const chat = await client.chat.completions.create(chatParams({ n: 2 }));
  assert.deepEqual(chat.choices.map((c) => c.index), [0, 1]);
  for (const c of chat.choices) {
    assert.equal(c.message.content, ref.chat.choices[0].message.content);
    assert.equal(c.finish_reason, ref.chat.choices[0].finish_reason);
  }
  assert.equal(chat.usage.prompt_tokens, ref.chat.usage.prompt_tokens, "the prompt is counted once");
  assert.equal(chat.usage.completion_tokens, 2 * ref.chat.usage.completion_tokens);

  const s = await collectChat(await client.chat.completions.create(chatParams({ n: 2, stream: true })));
  assert.deepEqual(s.roles, { 0: "assistant", 1: "assistant" });
  assert.deepEqual(s.text, { 0: chat.choices[0].message.content, 1: chat.choices[1].message.content });
  assert.deepEqual(s.finish, { 0: chat.choices[0].finish_reason, 1: chat.choices[1].finish_reason });
  assert.deepEqual(s.usage, chat.usage);

  const comp = await client.completions.create(completionParams({ n: 2 }));
  assert.deepEqual(comp.choices.map((c) => [c.index, c.text]),
                   [[0, ref.completion.choices[0].text], [1, ref.completion.choices[0].text]]);
  const cs = await collectCompletion(await client.completions.create(completionParams({ n: 2, stream: true })));
  assert.deepEqual(cs.text, { 0: comp.choices[0].text, 1: comp.choices[1].text });
});

test("stop strings cut the text before the first match", TEST_TIMEOUT, async () => {
  const full = ref.chat.choices[0].message.content;
  const chars = Array.from(full);  // code points: never split a surrogate pair
  assert.ok(chars.length >= 4, `need a longer reference text: ${JSON.stringify(full)}`);
  const mid = Math.floor(chars.length / 2);
  const stop = chars.slice(mid, mid + 2).join("");
  const expected = full.slice(0, full.indexOf(stop));

  const r = await client.chat.completions.create(chatParams({ stop: ["never in this text", stop] }));
  assert.equal(r.choices[0].message.content, expected);
  assert.equal(r.choices[0].finish_reason, "stop");
  checkUsage(r.usage, FAST.max_tokens);

  const s = await collectChat(await client.chat.completions.create(chatParams({ stop, stream: true })));
  assert.equal(s.text[0], expected);
  assert.deepEqual(s.finish, { 0: "stop" });

  const ctext = ref.completion.choices[0].text;
  const cchars = Array.from(ctext);
  const cstop = cchars.slice(Math.floor(cchars.length / 2)).join("").slice(0, 2);
  const c = await client.completions.create(completionParams({ stop: cstop }));
  assert.equal(c.choices[0].text, ctext.slice(0, ctext.indexOf(cstop)));
  assert.equal(c.choices[0].finish_reason, "stop");
});

test("sampling with a seed is reproducible; include_usage sends a usage chunk", LONG_TEST_TIMEOUT, async () => {
  // Temperature 1 over the whole vocabulary: padding rows of the embedding past the tokenizer may be
  // drawn; they decode to nothing instead of failing the request.
  for (const seed of [0, 1, 2, 3, 4, 5, 6, 7]) {
    const params = completionParams({ temperature: 1, seed });
    const a = await client.completions.create(params);
    const b = await client.completions.create(params);
    assert.equal(a.choices[0].text, b.choices[0].text, `seed ${seed}`);
  }
  const stream = await client.chat.completions.create(
    chatParams({ stream: true, stream_options: { include_usage: true } }));
  let text = "";
  let usageChunks = 0;
  let last;
  for await (const chunk of stream) {
    for (const c of chunk.choices) text += c.delta?.content ?? "";
    if (chunk.usage) usageChunks += 1;
    last = chunk;
  }
  assert.equal(usageChunks, 1);
  assert.deepEqual(last.choices, []);
  checkUsage(last.usage, FAST.max_tokens);
  const whole = await client.chat.completions.create(chatParams());
  assert.equal(text, whole.choices[0].message.content);
  assert.deepEqual(last.usage, whole.usage);
});

test("errors surface as the client's error classes", TEST_TIMEOUT, async () => {
  await expectApiError(client.chat.completions.create(chatParams({ temperature: -1 })), OpenAI.BadRequestError, 400,
                       { param: "temperature", type: "invalid_request_error" });
  await expectApiError(client.chat.completions.create(chatParams({ max_tokens: 0 })), OpenAI.BadRequestError, 400,
                       { param: "max_tokens" });
  await expectApiError(client.completions.create(completionParams({ top_p: 0 })), OpenAI.BadRequestError, 400,
                       { param: "top_p" });
  // A streaming request that is invalid fails before any chunk, as the create() call.
  await expectApiError(client.chat.completions.create(chatParams({ n: 0, stream: true })), OpenAI.BadRequestError,
                       400, { param: "n" });
  await expectApiError(client.chat.completions.create(chatParams({ max_tokens: 100000 })), OpenAI.BadRequestError,
                       400, { param: "max_tokens" });
  await expectApiError(client.chat.completions.create(chatParams({ messages: [] })), OpenAI.BadRequestError, 400,
                       { param: "messages" });
  await expectApiError(client.chat.completions.create(chatParams({ model: "no-such-model" })), OpenAI.NotFoundError,
                       404, { code: "model_not_found", param: "model" });
  await expectApiError(client.completions.create(completionParams({ model: "no-such-model", stream: true })),
                       OpenAI.NotFoundError, 404, { code: "model_not_found" });

  const wrongKey = new OpenAI({ baseURL, apiKey: apiKey + "-wrong", maxRetries: 0, timeout: 30_000 });
  await expectApiError(wrongKey.chat.completions.create(chatParams()), OpenAI.AuthenticationError, 401,
                       { code: "invalid_api_key" });
  await expectApiError(wrongKey.models.list(), OpenAI.AuthenticationError, 401);
  await expectApiError(wrongKey.completions.create(completionParams({ stream: true })), OpenAI.AuthenticationError,
                       401);
  // The server is fine after all that.
  const ok = await client.chat.completions.create(chatParams());
  assert.equal(ok.choices[0].message.content, ref.chat.choices[0].message.content);
});

// Aborts a long streaming generation after its first text, then checks the server noticed and still answers.
async function abortMidStream(abort) {
  const before = await health();
  const controller = new AbortController();
  // threshold 1: one token per refinement step, so 448 tokens take long enough to be cut off.
  const stream = await client.chat.completions.create(
    chatParams({ stream: true, max_tokens: 448, threshold: 1, editing_threshold: null }), { signal: controller.signal });
  let text = "", finished = false;
  for await (const chunk of stream) {  // an aborted stream ends the loop without an error
    const c = chunk.choices[0];
    if (c?.finish_reason) finished = true;
    if (c?.delta?.content) {
      text += c.delta.content;
      abort(stream, controller);
    }
  }
  assert.ok(text.length > 0, "got some text before aborting");
  assert.ok(!finished, "the generation was cut off, not finished");

  if ("cancelled" in before) {
    const deadline = Date.now() + 10_000;
    let h = await health();
    while (h.cancelled <= before.cancelled && Date.now() < deadline) {
      await sleep(50);
      h = await health();
    }
    assert.ok(h.cancelled > before.cancelled, `/health cancelled stayed at ${h.cancelled}`);
    if ("running" in h) {  // the slot is freed too
      while (h.running !== 0 && Date.now() < deadline) {
        await sleep(50);
        h = await health();
      }
      assert.equal(h.running, 0, "no generation runs after the cancel");
    }
  }
  const next = await client.chat.completions.create(chatParams());
  assert.equal(next.choices[0].message.content, ref.chat.choices[0].message.content);
}

test("aborting a stream with stream.controller.abort() leaves the server healthy", TEST_TIMEOUT, async () => {
  await abortMidStream((stream) => stream.controller.abort());
});

test("aborting a stream with an AbortController signal leaves the server healthy", TEST_TIMEOUT, async () => {
  await abortMidStream((_stream, controller) => controller.abort());
});

test("an aborted request surfaces as APIUserAbortError", TEST_TIMEOUT, async () => {
  const controller = new AbortController();
  const pending = client.chat.completions.create(chatParams({ stream: true, max_tokens: 448, threshold: 1 }),
                                                 { signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, OpenAI.APIUserAbortError);
  const next = await client.completions.create(completionParams());
  assert.equal(next.choices[0].text, ref.completion.choices[0].text);
});

test("concurrent requests all succeed with the answers they get alone", TEST_TIMEOUT, async () => {
  const before = await health();
  const chat = () => client.chat.completions.create(chatParams()).then((r) => r.choices[0].message.content);
  const chatStream = () => client.chat.completions.create(chatParams({ stream: true }))
                           .then(collectChat).then((s) => s.text[0]);
  const comp = () => client.completions.create(completionParams()).then((r) => r.choices[0].text);
  const compStream = () => client.completions.create(completionParams({ stream: true }))
                           .then(collectCompletion).then((s) => s.text[0]);
  const models = () => client.models.list().then((page) => page.data[0].id);
  const jobs = [chat(), chat(), chatStream(), chatStream(), comp(), comp(), compStream(), compStream(), models()];
  const got = await Promise.all(jobs);
  const c = ref.chat.choices[0].message.content, t = ref.completion.choices[0].text;
  assert.deepEqual(got, [c, c, c, c, t, t, t, t, model]);
  const after = await health();
  if ("requests" in before) assert.ok(after.requests >= before.requests + 8, `requests ${before.requests} -> ${after.requests}`);
  if ("rejected" in before) assert.equal(after.rejected, before.rejected, "none turned away");
});
