// The chat page of `llada2 serve` in headless Chromium (puppeteer-core driving the system's chromium).
//
//   LLADA2_PAGE_URL        the page of a server without an API key, e.g. http://127.0.0.1:8080/ (required)
//   LLADA2_KEY_PAGE_URL    the page of a server started with --api-key (optional: that test is skipped)
//   LLADA2_KEY             that server's key
//   LLADA2_CHROMIUM        the browser (default: chromium on PATH)
//   LLADA2_SCREENSHOT_DIR  where the screenshots go (default: the current folder)
//
// tests/web_page_test.cc starts the servers on a tiny random model (its text is noise) and runs this
// file. The page is compared with the API itself: the streamed answer it shows must be the
// non-streamed answer for the same request. Every test fails on a console error, an uncaught
// exception or a failed request of the page, except those it expects (a stopped answer, a 401).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import puppeteer from "puppeteer-core";

const PAGE = process.env.LLADA2_PAGE_URL;
if (!PAGE) throw new Error("set LLADA2_PAGE_URL to the chat page of a running llada2 serve");
const KEY_PAGE = process.env.LLADA2_KEY_PAGE_URL;
const KEY = process.env.LLADA2_KEY || "";
const SHOTS = process.env.LLADA2_SCREENSHOT_DIR || ".";
const T = { timeout: 90_000 };

let browser;

before(async () => {
  const executablePath = process.env.LLADA2_CHROMIUM || execFileSync("which", ["chromium"]).toString().trim();
  const args = ["--disable-gpu", "--disable-dev-shm-usage", "--font-render-hinting=none"];
  if (process.getuid && process.getuid() === 0) args.push("--no-sandbox");  // root has no user namespace sandbox
  browser = await puppeteer.launch({ executablePath, headless: true, args });
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A fresh page (own storage) that records what went wrong on it.
async function openPage(url, { viewport = { width: 1280, height: 860 }, dark = false } = {}) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport(viewport);
  if (dark) await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
  const problems = [];
  const requests = [];  // the bodies of the page's chat requests
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "assert") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  page.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/v1/chat/completions"))
      requests.push({ body: JSON.parse(r.postData() || "{}"), headers: r.headers() });
  });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => !/connecting/.test(document.getElementById("model-name").textContent));
  // Counts the canvas draws by kind of cell.
  await page.evaluate(() => {
    window.__draws = [];
    new MutationObserver((records) => {
      for (const r of records) {
        const c = r.target;
        if (!c.classList || !c.classList.contains("canvas")) continue;
        const n = (kind) => c.querySelectorAll(`.canvas-cells .cell.${kind}`).length;
        window.__draws.push({ block: Number(c.dataset.block), step: Number(c.dataset.step), masked: n("masked"),
                              committed: n("committed"), edited: n("edited"), settled: n("settled") });
      }
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["data-draws"] });
  });
  return { page, problems, requests, context, close: () => context.close() };
}

// Problems other than those matching one of `expected` (regexps).
function unexpected(problems, expected = []) {
  return problems.filter((p) => !expected.some((re) => re.test(p)));
}

async function setField(page, selector, value) {
  await page.$eval(selector, (el, v) => {
    el.value = v;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, String(value));
}

async function setSettings(page, s) {
  if (!(await page.$eval("#settings", (d) => d.open))) await page.click("#settings summary");
  for (const [sel, v] of Object.entries(s)) {
    if (sel === "#editing-on") {
      if ((await page.$eval(sel, (e) => e.checked)) !== v) await page.click(sel);
    } else if (sel === "#attention") {
      await page.select(sel, v);
    } else {
      await setField(page, sel, v);
    }
  }
}

async function send(page, text) {
  await page.focus("#prompt");
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

// Waits for the n-th answer (1-based) to end; returns what it shows.
async function answerEnd(page, n, timeout = 60_000) {
  await page.waitForFunction((k) => {
    const a = document.querySelectorAll(".msg.assistant")[k - 1];
    return a && a.dataset.outcome;
  }, { timeout }, n);
  return page.evaluate((k) => {
    const a = document.querySelectorAll(".msg.assistant")[k - 1];
    return {
      outcome: a.dataset.outcome, raw: a.dataset.raw, html: a.querySelector(".md").innerHTML,
      stats: Object.fromEntries([...a.querySelectorAll(".stat[data-stat]")].map(
          (s) => [s.dataset.stat, s.querySelector("strong").textContent])),
      error: a.querySelector(".error")?.textContent || null, canvas: !!a.querySelector(".canvas"),
    };
  }, n);
}

// The server's non-streamed answer to a request the page made.
async function apiAnswer(base, body, key) {
  const { stream, llada2_canvas, ...rest } = body;
  const headers = { "Content-Type": "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const r = await fetch(new URL("/v1/chat/completions", base), { method: "POST", headers,
                                                                  body: JSON.stringify({ ...rest, stream: false }) });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()).choices[0].message.content;
}

async function health(base) {
  return (await fetch(new URL("/health", base))).json();
}

async function noHorizontalScroll(page) {
  const { scroll, width, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, width: window.innerWidth,
    inner: [...document.querySelectorAll(".scroller, .side, .composer")].filter((e) => e.scrollWidth > e.clientWidth)
        .map((e) => `${e.className} ${e.scrollWidth} > ${e.clientWidth}`) }));
  assert.ok(scroll <= width, `the page is ${scroll} px wide in a ${width} px viewport`);
  assert.deepEqual(inner, [], "no part of the page scrolls sideways");
}

// Waits until the canvas shows a block mid-diffusion: at least `masked` masked cells and cells
// committed in this step, in block `block` or later.
async function midDiffusion(page, { masked = 6, block = 0 } = {}) {
  await page.waitForFunction((m, b) => {
    const c = document.querySelector(".canvas");
    return c && Number(c.dataset.block) >= b && c.querySelectorAll(".cell.masked").length >= m &&
           c.querySelector(".cell.committed");
  }, { timeout: 30_000, polling: "mutation" }, masked, block);
}

async function shot(page, name) {
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file });
  return file;
}

test("the page and its files load, showing the server's defaults", T, async () => {
  const r = await fetch(PAGE);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/html/);
  const p = await openPage(PAGE);
  try {
    const { page } = p;
    assert.match(await page.$eval("#model-name", (e) => e.textContent), /model tiny-chat/);
    const values = await page.evaluate(() => Object.fromEntries(
        ["threshold", "editing-threshold", "block-length", "steps", "max-tokens", "temperature", "attention"].map(
            (id) => [id, document.getElementById(id).value])));
    assert.deepEqual(values, { threshold: "0.7", "editing-threshold": "0.5", "block-length": "32", steps: "32",
                               "max-tokens": "256", temperature: "0", attention: "block_causal" });
    assert.equal(await page.$eval("#editing-on", (e) => e.checked), true);
    assert.match(await page.$eval("#threshold-help", (e) => e.textContent), /Default 0\.7/);
    // Every control has a label; the live regions and dialog are marked up.
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim())
        .map((e) => e.id || e.outerHTML.slice(0, 60)));
    assert.deepEqual(unlabelled, []);
    assert.equal(await page.$eval("#messages", (e) => e.getAttribute("role")), "log");
    // The presets: S = threshold 0.5, editing off; Q = threshold 0.7, editing 0.5.
    await page.click("#preset-s");
    assert.deepEqual(await page.evaluate(() => [document.getElementById("threshold").value,
                                                document.getElementById("editing-on").checked,
                                                document.getElementById("preset-s").getAttribute("aria-pressed")]),
                     ["0.5", false, "true"]);
    await page.click("#preset-q");
    assert.deepEqual(await page.evaluate(() => [document.getElementById("threshold").value,
                                                document.getElementById("editing-on").checked,
                                                document.getElementById("editing-threshold").value,
                                                document.getElementById("preset-q").getAttribute("aria-pressed")]),
                     ["0.7", true, "0.5", "true"]);
    await page.click("#preset-default");
    // Keyboard: Tab reaches the controls and the focused one is outlined.
    await page.focus("#new-chat");
    await page.keyboard.down("Shift");
    await page.keyboard.press("Tab");
    await page.keyboard.up("Shift");
    await page.keyboard.press("Tab");
    const focus = await page.evaluate(() => {
      const e = document.activeElement;
      return { id: e.id, outline: getComputedStyle(e).outlineStyle, visible: e.matches(":focus-visible") };
    });
    assert.equal(focus.id, "new-chat");
    assert.ok(focus.visible && focus.outline !== "none", `focus outline: ${JSON.stringify(focus)}`);
    assert.deepEqual(unexpected(p.problems), []);
  } finally {
    await p.close();
  }
});

test("an answer streams with the live canvas and ends as the API's answer", T, async () => {
  const p = await openPage(PAGE);
  try {
    const { page } = p;
    await setSettings(page, { "#max-tokens": 96, "#block-length": 32, "#steps": 32, "#threshold": 0.9,
                              "#temperature": 0, "#editing-on": true, "#editing-threshold": 0.5 });
    await send(page, "Explain block diffusion in two sentences.");
    assert.equal(await page.$eval("#stop", (b) => b.hidden), false, "the stop button shows while it runs");
    // Mid-diffusion, in the second block (the first one is text by then).
    await midDiffusion(page, { masked: 8, block: 1 });
    await shot(page, "chat-desktop-diffusing.png");
    const end = await answerEnd(page, 1);
    assert.equal(end.outcome, "done");
    assert.equal(end.error, null);
    assert.equal(end.canvas, false, "the canvas collapses to the text when the answer is done");
    const draws = await page.evaluate(() => window.__draws);
    assert.ok(draws.length >= 3, `canvas draws: ${draws.length}`);
    assert.ok(draws.filter((d) => d.masked > 0).length >= 2, JSON.stringify(draws.slice(0, 5)));
    assert.ok(draws.some((d) => d.committed > 0));
    assert.ok(draws.some((d) => d.settled > 0 || d.block > 0));
    // The text is the API's non-streamed answer to the same request ...
    assert.equal(p.requests.length, 1);
    const req = p.requests[0].body;
    assert.equal(req.stream, true);
    assert.equal(req.llada2_canvas, true);
    assert.deepEqual([req.max_tokens, req.block_length, req.steps, req.threshold, req.temperature,
                      req.editing_threshold, req.attention], [96, 32, 32, 0.9, 0, 0.5, "block_causal"]);
    const api = await apiAnswer(PAGE, req);
    assert.ok(api.length > 0);
    assert.equal(end.raw, api);
    // ... rendered by the page's Markdown renderer.
    const rendered = await page.evaluate(async (text) => {
      const { renderMarkdown } = await import("/static/markdown.js");
      const div = document.createElement("div");
      div.appendChild(renderMarkdown(text));
      return div.innerHTML;
    }, api);
    assert.equal(end.html, rendered);
    // Per answer: forwards, tokens per forward, tokens/s.
    for (const k of ["forwards", "tokens / forward", "tokens / s", "tokens"])
      assert.ok(Number(end.stats[k]) > 0, `${k}: ${JSON.stringify(end.stats)}`);
    assert.equal(await page.$eval("#stop", (b) => b.hidden), true);
    assert.equal(await page.$eval("#send", (b) => b.disabled), false);

    // The diffusion replays at a readable pace, frame by frame, from the first block; pressing the
    // button again stops it and hides the canvas.
    const replay = ".msg.assistant .replay";
    assert.match(await page.$eval(replay, (b) => b.textContent), new RegExp(`Replay the diffusion \\(${end.stats["canvas frames"]} steps\\)`));
    await page.click(replay);
    await page.waitForFunction(() => {
      const c = document.querySelector(".msg.assistant .canvas");
      return c && c.classList.contains("replaying") && Number(c.dataset.draws || 0) >= 3;
    }, { timeout: 10_000 });
    const replayed = await page.$eval(".msg.assistant .canvas", (c) => ({
      title: c.querySelector(".canvas-title").textContent, block: Number(c.dataset.block),
      masked: c.querySelectorAll(".cell.masked").length }));
    assert.match(replayed.title, /^replay · block 1 · step [0-9]+$/);
    assert.equal(replayed.block, 0);
    assert.ok(replayed.masked > 0, "mid-replay, the first block still has masked cells");
    assert.equal(await page.$eval(replay, (b) => b.textContent), "■ Stop the replay");
    await page.click(replay);
    assert.equal(await page.$(".msg.assistant .canvas"), null, "stopping the replay hides the canvas");

    // Multi-turn: the next request carries the conversation; a new chat starts over.
    await setSettings(page, { "#max-tokens": 16, "#block-length": 8, "#steps": 8 });
    await page.click("#preset-s");
    await send(page, "And in one word?");
    assert.equal((await answerEnd(page, 2)).outcome, "done");
    const second = p.requests[1].body;
    assert.deepEqual(second.messages.map((m) => m.role), ["user", "assistant", "user"]);
    assert.equal(second.messages[1].content, api);
    assert.equal(second.threshold, 0.5);
    assert.equal(second.editing_threshold, null);
    await page.click("#new-chat");
    assert.equal(await page.$$eval(".msg", (m) => m.length), 0);
    assert.equal(await page.$eval("#welcome", (w) => w.hidden), false);
    await send(page, "Hello again");
    assert.equal((await answerEnd(page, 1)).outcome, "done");
    assert.equal(p.requests[2].body.messages.length, 1);
    assert.deepEqual(unexpected(p.problems), []);
  } finally {
    await p.close();
  }
});

test("the stop button cancels a long answer and the page stays usable", T, async () => {
  const p = await openPage(PAGE);
  try {
    const { page } = p;
    await setSettings(page, { "#max-tokens": 448, "#block-length": 4, "#steps": 4, "#threshold": 0.7 });
    const before = await health(PAGE);
    await send(page, "Write a very long story.");
    await page.waitForFunction(() => Number(document.querySelector(".canvas")?.dataset.draws || 0) >= 2,
                               { timeout: 30_000 });
    await page.click("#stop");
    const end = await answerEnd(page, 1);
    assert.equal(end.outcome, "stopped");
    assert.equal(end.error, null);
    assert.equal(end.canvas, false);
    assert.match(await page.$eval(".msg.assistant .stats", (s) => s.textContent), /stopped/);
    // The server noticed: the generation was cancelled, nothing runs any more.
    let h;
    for (let i = 0; i < 100; i++) {
      h = await health(PAGE);
      if (h.cancelled > before.cancelled && h.running === 0) break;
      await sleep(100);
    }
    assert.ok(h.cancelled > before.cancelled, `cancelled ${before.cancelled} -> ${h.cancelled}`);
    assert.equal(h.running, 0);
    // Usable again: the focus is back in the box, and Esc stops an answer too (in a new chat: the
    // stopped answer would make the next prompt too long for the test model's 512 positions).
    assert.equal(await page.evaluate(() => document.activeElement.id), "prompt");
    assert.equal(await page.$eval("#send", (b) => b.disabled), false);
    await page.click("#new-chat");
    await send(page, "Another long one.");
    await page.waitForFunction(() => Number(document.querySelector(".canvas")?.dataset.draws || 0) >= 1,
                               { timeout: 30_000 });
    await page.keyboard.press("Escape");
    assert.equal((await answerEnd(page, 1)).outcome, "stopped");
    // Shift+Enter is a new line, Enter sends.
    await page.focus("#prompt");
    await page.keyboard.type("line one");
    await page.keyboard.down("Shift");
    await page.keyboard.press("Enter");
    await page.keyboard.up("Shift");
    await page.keyboard.type("line two");
    assert.equal(await page.$eval("#prompt", (t) => t.value), "line one\nline two");
    await setSettings(page, { "#max-tokens": 16, "#block-length": 8, "#steps": 8 });
    await page.focus("#prompt");
    await page.keyboard.press("Enter");
    assert.equal((await answerEnd(page, 2)).outcome, "done");
    assert.equal(p.requests[2].body.messages.at(-1).content, "line one\nline two");
    // The aborted requests are the only failures.
    assert.deepEqual(unexpected(p.problems, [/request failed: POST \S+\/v1\/chat\/completions net::ERR_ABORTED/]), []);
  } finally {
    await p.close();
  }
});

test("errors from the server and the network are shown in the conversation", T, async () => {
  const p = await openPage(PAGE);
  try {
    const { page } = p;
    await setSettings(page, { "#max-tokens": 100000 });
    await send(page, "Too long");
    const bad = await answerEnd(page, 1);
    assert.equal(bad.outcome, "error");
    assert.match(bad.error, /400/);
    assert.match(bad.error, /max_tokens/);
    await setSettings(page, { "#max-tokens": 16, "#block-length": 8, "#steps": 8 });
    await page.setOfflineMode(true);
    await send(page, "Offline");
    const offline = await answerEnd(page, 2);
    assert.equal(offline.outcome, "error");
    assert.match(offline.error, /connection failed/i);
    await page.setOfflineMode(false);
    await send(page, "Online again");
    assert.equal((await answerEnd(page, 3)).outcome, "done");
    // The failed turns are not in the history.
    assert.deepEqual(p.requests.at(-1).body.messages.map((m) => m.role), ["user"]);
    assert.deepEqual(unexpected(p.problems, [/HTTP 400: POST/, /status of 400/, /ERR_INTERNET_DISCONNECTED/]),
                     []);
  } finally {
    await p.close();
  }
});

test("Markdown is rendered and HTML in answers stays text", T, async () => {
  const p = await openPage(PAGE);
  try {
    const out = await p.page.evaluate(async () => {
      const { renderMarkdown } = await import("/static/markdown.js");
      window.__pwned = false;
      const div = document.createElement("div");
      document.body.appendChild(div);
      div.appendChild(renderMarkdown([
        "# Title", "Some **bold**, *italic*, `code <b>` and ~~gone~~ text.",
        "<img src=x onerror=\"window.__pwned = true\"> <script>window.__pwned = true</script>",
        "[ok](https://example.org/a_(b)) [bad](javascript:window.__pwned=true) <https://example.org/x>",
        "", "- one", "- two", "  - nested", "", "1. first", "2. second", "", "> quoted", "",
        "```js", "if (a < b) { x = \"</code>\"; }", "```", "", "---", "snake_case_word and a_b_c",
      ].join("\n")));
      await new Promise((r) => setTimeout(r, 50));
      const q = (s) => div.querySelectorAll(s).length;
      const out = {
        h3: div.querySelector("h3")?.textContent, strong: q("strong"), em: q("em"), del: q("del"),
        inlineCode: div.querySelector("code.md-inline")?.textContent, img: q("img"), script: q("script"),
        links: [...div.querySelectorAll("a")].map((a) => a.getAttribute("href")), ul: q("ul"), ol: q("ol"),
        li: q("li"), blockquote: q("blockquote"), pre: div.querySelector("pre code")?.textContent,
        lang: div.querySelector("pre")?.dataset.lang, hr: q("hr"), text: div.textContent, pwned: window.__pwned,
      };
      div.remove();
      return out;
    });
    assert.equal(out.h3, "Title");
    assert.equal(out.strong, 1);
    assert.equal(out.em, 1);
    assert.equal(out.del, 1);
    assert.equal(out.inlineCode, "code <b>");
    assert.equal(out.img, 0);
    assert.equal(out.script, 0);
    assert.equal(out.pwned, false);
    assert.match(out.text, /<img src=x onerror=/);
    assert.deepEqual(out.links, ["https://example.org/a_(b)", "https://example.org/x"]);
    assert.equal(out.ul, 2);
    assert.equal(out.ol, 1);
    assert.equal(out.li, 5);
    assert.equal(out.blockquote, 1);
    assert.equal(out.pre, "if (a < b) { x = \"</code>\"; }");
    assert.equal(out.lang, "js");
    assert.equal(out.hr, 1);
    assert.match(out.text, /snake_case_word and a_b_c/);
    assert.deepEqual(unexpected(p.problems), []);
  } finally {
    await p.close();
  }
});

test("on a 360 px phone screen: no horizontal scroll, settings folded", T, async () => {
  const p = await openPage(PAGE, { viewport: { width: 360, height: 740, deviceScaleFactor: 2, isMobile: true,
                                               hasTouch: true } });
  try {
    const { page } = p;
    assert.equal(await page.$eval("#settings", (d) => d.open), false);
    await noHorizontalScroll(page);
    await shot(page, "chat-phone-start.png");
    await setSettings(page, { "#max-tokens": 64, "#block-length": 32, "#steps": 32, "#threshold": 0.9 });
    await page.click("#settings summary");  // fold it again
    await send(page, "A question from a phone, with a long word: Donaudampfschifffahrtsgesellschaftskapitän.");
    await midDiffusion(page, { masked: 8 });
    await noHorizontalScroll(page);
    await shot(page, "chat-phone-diffusing.png");
    assert.equal((await answerEnd(page, 1)).outcome, "done");
    await noHorizontalScroll(page);
    await page.click("#settings summary");
    await noHorizontalScroll(page);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, "chat-phone-settings.png");
    assert.deepEqual(unexpected(p.problems), []);
  } finally {
    await p.close();
  }
});

test("dark mode", T, async () => {
  const p = await openPage(PAGE, { dark: true });
  try {
    const { page } = p;
    await setSettings(page, { "#max-tokens": 64, "#block-length": 32, "#steps": 32, "#threshold": 0.9 });
    await send(page, "What is a diffusion language model?");
    await midDiffusion(page, { masked: 8 });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(bg, "rgb(246, 246, 243)", "the dark palette applies");
    await shot(page, "chat-desktop-dark.png");
    assert.equal((await answerEnd(page, 1)).outcome, "done");
    await shot(page, "chat-desktop-dark-done.png");
    assert.deepEqual(unexpected(p.problems), []);
  } finally {
    await p.close();
  }
});

test("with --api-key the page asks for the key once and sends it", { ...T, skip: !KEY_PAGE && "no LLADA2_KEY_PAGE_URL" },
     async () => {
  // The page and its files need no key; the API does.
  assert.equal((await fetch(KEY_PAGE)).status, 200);
  assert.equal((await fetch(new URL("/static/app.js", KEY_PAGE))).status, 200);
  assert.equal((await fetch(new URL("/v1/models", KEY_PAGE))).status, 401);
  const p = await openPage(KEY_PAGE, {});
  try {
    const { page } = p;
    await page.waitForSelector("#key-dialog[open]");
    assert.equal(await page.evaluate(() => document.activeElement.id), "key-input");
    await shot(page, "chat-api-key.png");
    // A wrong key: the form says so and stays.
    await page.keyboard.type("wrong-key");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => !document.getElementById("key-error").hidden);
    assert.match(await page.$eval("#key-error", (e) => e.textContent), /did not accept/);
    assert.equal(await page.$eval("#key-dialog", (d) => d.open), true);
    // The right one: kept for the tab, sent as a Bearer token.
    await page.click("#key-input", { clickCount: 3 });
    await page.keyboard.type(KEY);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => !document.getElementById("key-dialog").open);
    await page.waitForFunction(() => /tiny-chat/.test(document.getElementById("model-name").textContent));
    assert.equal(await page.evaluate(() => sessionStorage.getItem("llada2.apiKey")), KEY);
    await setSettings(page, { "#max-tokens": 16, "#block-length": 8, "#steps": 8 });
    await send(page, "Hello with a key");
    const end = await answerEnd(page, 1);
    assert.equal(end.outcome, "done");
    assert.equal(p.requests[0].headers.authorization, `Bearer ${KEY}`);
    assert.equal(end.raw, await apiAnswer(KEY_PAGE, p.requests[0].body, KEY));
    // Reloaded in the same tab: no form again.
    await page.reload({ waitUntil: "load" });
    await page.waitForFunction(() => /tiny-chat/.test(document.getElementById("model-name").textContent));
    assert.equal(await page.$eval("#key-dialog", (d) => d.open), false);
    // A stored key the server refuses: a 401 brings the form back, and the answer goes on with the new key.
    await page.evaluate(() => sessionStorage.setItem("llada2.apiKey", "stale-key"));
    await send(page, "Hello after the key changed");
    await page.waitForSelector("#key-dialog[open]");
    await page.keyboard.type(KEY);
    await page.keyboard.press("Enter");
    assert.equal((await answerEnd(page, 1)).outcome, "done");
    assert.equal(p.requests.at(-1).headers.authorization, `Bearer ${KEY}`);
    assert.deepEqual(unexpected(p.problems, [/HTTP 401: /, /status of 401/]), []);
  } finally {
    await p.close();
  }
});
