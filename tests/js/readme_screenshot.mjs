// Takes docs/chat-page.png, the README's picture of the chat page mid-diffusion: asks a running
// `llada2 serve` (the demo model) a question, replays the answer's diffusion and photographs a step
// with masked, newly committed and earlier cells.
//
//   node tests/js/readme_screenshot.mjs http://127.0.0.1:8080/ docs/chat-page.png ["question"]
//
// Needs tests/js/node_modules (scripts/fetch-test-data.sh) and Debian's chromium.
import { execFileSync } from "node:child_process";

import puppeteer from "puppeteer-core";

const [url, out, question = "What is 4821 + 739?"] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node tests/js/readme_screenshot.mjs PAGE_URL OUT.png [QUESTION]");
  process.exit(2);
}
const executablePath = process.env.LLADA2_CHROMIUM || execFileSync("which", ["chromium"]).toString().trim();
const args = ["--disable-gpu", "--disable-dev-shm-usage", "--font-render-hinting=none"];
if (process.getuid && process.getuid() === 0) args.push("--no-sandbox");
const browser = await puppeteer.launch({ executablePath, headless: true, args });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 760, deviceScaleFactor: 1 });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => !/connecting/.test(document.getElementById("model-name").textContent));
  // The question (Shift+Enter between its lines), then its answer's end.
  await page.focus("#prompt");
  const lines = question.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (i > 0) {
      await page.keyboard.down("Shift");
      await page.keyboard.press("Enter");
      await page.keyboard.up("Shift");
    }
    await page.keyboard.type(lines[i]);
  }
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector(".msg.assistant")?.dataset.outcome, { timeout: 60_000 });
  // Replay the last answer and hold it on the first step that has masked, new and earlier cells: the
  // replay's timers wait while window.holdReplay is set.
  await page.evaluate(() => {
    const setTimer = window.setTimeout.bind(window);
    const held = (f, ms) => setTimer(() => (window.holdReplay ? held(f, 50) : f()), ms);
    window.setTimeout = held;
  });
  const buttons = await page.$$(".msg.assistant .replay");
  await buttons[buttons.length - 1].click();
  await page.waitForFunction(() => {
    const c = [...document.querySelectorAll(".msg.assistant .canvas")].pop();
    const ok = c && Number(c.dataset.step) >= 2 && c.querySelectorAll(".cell.masked").length >= 4 &&
               c.querySelector(".cell.committed") && c.querySelector(".cell.settled");
    if (ok) window.holdReplay = true;
    return ok;
  }, { timeout: 30_000, polling: "mutation" });
  await page.evaluate(() => {
    for (const t of document.querySelectorAll(".msg.assistant .canvas")) t.scrollIntoView({ block: "end" });
  });
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
