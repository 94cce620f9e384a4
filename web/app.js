// The chat page of `llada2 serve`: a conversation streamed from /v1/chat/completions, with the live
// canvas of the block being refined, the diffusion settings and the API key when the server wants one.
import { LiveCanvas } from "./canvas.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);

// The server's defaults, put into the page by the server; the documented ones if it did not.
const FALLBACK = {
  defaults: { max_tokens: 256, block_length: 32, steps: 32, threshold: 0.7, editing_threshold: 0.5,
              temperature: 0, attention: "block_causal" },
  limits: { max_tokens: 4096 },
  api_key: false,
};
const CONFIG = (() => {
  const node = $("server-config");
  if (!node) return FALLBACK;
  try {
    const c = JSON.parse(node.textContent);
    return { ...FALLBACK, ...c, defaults: { ...FALLBACK.defaults, ...(c.defaults || {}) } };
  } catch {
    return FALLBACK;
  }
})();
const DEFAULTS = CONFIG.defaults;
const KEY_STORAGE = "llada2.apiKey";
const SETTINGS_STORAGE = "llada2.settings";

// LLaDA2.1's two operating points.
const PRESETS = {
  s: { threshold: 0.5, editing: false },
  q: { threshold: 0.7, editing: true, editing_threshold: 0.5 },
};

const ui = {
  messages: $("messages"),
  scroller: $("scroller"),
  welcome: $("welcome"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  newChat: $("new-chat"),
  model: $("model-name"),
  settings: $("settings"),
  settingsSummary: $("settings-summary"),
  threshold: $("threshold"),
  editingOn: $("editing-on"),
  editing: $("editing-threshold"),
  blockLength: $("block-length"),
  steps: $("steps"),
  maxTokens: $("max-tokens"),
  temperature: $("temperature"),
  attention: $("attention"),
  showCanvas: $("show-canvas"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyError: $("key-error"),
  keyCancel: $("key-cancel"),
};

// ---- settings --------------------------------------------------------------------------------

function showDefaults() {
  const text = {
    threshold: DEFAULTS.threshold,
    editing_threshold: DEFAULTS.editing_threshold === null ? "off" : DEFAULTS.editing_threshold,
    block_length: DEFAULTS.block_length,
    steps: DEFAULTS.steps,
    max_tokens: DEFAULTS.max_tokens,
    temperature: DEFAULTS.temperature,
    attention: DEFAULTS.attention,
  };
  for (const span of document.querySelectorAll("[data-default]")) {
    span.textContent = `Default ${text[span.dataset.default]}.`;
  }
  ui.threshold.placeholder = String(DEFAULTS.threshold);
  ui.editing.placeholder = String(DEFAULTS.editing_threshold ?? 0.5);
  ui.blockLength.placeholder = String(DEFAULTS.block_length);
  ui.steps.placeholder = String(DEFAULTS.steps);
  ui.maxTokens.placeholder = String(DEFAULTS.max_tokens);
  ui.maxTokens.max = String(CONFIG.limits.max_tokens);
  ui.temperature.placeholder = String(DEFAULTS.temperature);
}

function applySettings(s) {
  const d = DEFAULTS;
  ui.threshold.value = s.threshold ?? d.threshold;
  const editingOn = s.editing ?? d.editing_threshold !== null;
  ui.editingOn.checked = editingOn;
  ui.editing.value = s.editing_threshold ?? d.editing_threshold ?? 0.5;
  ui.editing.disabled = !editingOn;
  ui.blockLength.value = s.block_length ?? d.block_length;
  ui.steps.value = s.steps ?? d.steps;
  ui.maxTokens.value = s.max_tokens ?? d.max_tokens;
  ui.temperature.value = s.temperature ?? d.temperature;
  ui.attention.value = s.attention ?? d.attention;
  ui.showCanvas.checked = s.canvas ?? true;
  settingsChanged(false);
}

function readSettings() {
  const num = (input) => (input.value.trim() === "" ? undefined : Number(input.value));
  return {
    threshold: num(ui.threshold),
    editing: ui.editingOn.checked,
    editing_threshold: num(ui.editing),
    block_length: num(ui.blockLength),
    steps: num(ui.steps),
    max_tokens: num(ui.maxTokens),
    temperature: num(ui.temperature),
    attention: ui.attention.value,
    canvas: ui.showCanvas.checked,
  };
}

function settingsChanged(save = true) {
  const s = readSettings();
  ui.editing.disabled = !s.editing;
  const editing = s.editing ? `editing ${s.editing_threshold ?? DEFAULTS.editing_threshold}` : "editing off";
  ui.settingsSummary.textContent = `threshold ${s.threshold ?? DEFAULTS.threshold} · ${editing}`;
  for (const [name, p] of Object.entries(PRESETS)) {
    const on = s.threshold === p.threshold && s.editing === p.editing &&
               (!p.editing || s.editing_threshold === p.editing_threshold);
    $(`preset-${name}`).setAttribute("aria-pressed", String(on));
  }
  if (save) {
    try {
      localStorage.setItem(SETTINGS_STORAGE, JSON.stringify(s));
    } catch {
      // storage may be off; the settings then last as long as the page
    }
  }
}

// The LLaDA2 fields of a request (docs/server.md); a blank field is left to the server's default.
function requestSettings() {
  const s = readSettings();
  const body = {};
  for (const key of ["max_tokens", "temperature", "block_length", "steps", "threshold"]) {
    if (s[key] !== undefined && !Number.isNaN(s[key])) body[key] = s[key];
  }
  if (!s.editing) body.editing_threshold = null;
  else if (s.editing_threshold !== undefined && !Number.isNaN(s.editing_threshold))
    body.editing_threshold = s.editing_threshold;
  body.attention = s.attention;
  if (s.canvas) body.llada2_canvas = true;
  return body;
}

function initSettings() {
  showDefaults();
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(SETTINGS_STORAGE) || "{}") || {};
  } catch {
    saved = {};
  }
  applySettings(saved);
  $("settings-form").addEventListener("input", () => settingsChanged());
  $("settings-form").addEventListener("change", () => settingsChanged());
  $("settings-form").addEventListener("submit", (e) => e.preventDefault());
  $("preset-s").addEventListener("click", () => {
    applySettings({ ...readSettings(), ...PRESETS.s });
    settingsChanged();
  });
  $("preset-q").addEventListener("click", () => {
    applySettings({ ...readSettings(), ...PRESETS.q });
    settingsChanged();
  });
  $("preset-default").addEventListener("click", () => {
    applySettings({ canvas: ui.showCanvas.checked });
    settingsChanged();
  });
  // On a narrow screen the settings start folded, above the conversation.
  if (window.matchMedia("(max-width: 820px)").matches) ui.settings.open = false;
}

// ---- the API key -----------------------------------------------------------------------------

let memoryKey = "";  // the key, where the browser keeps no sessionStorage

function currentKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || memoryKey;
  } catch {
    return memoryKey;
  }
}

function saveKey(key) {
  memoryKey = key;
  try {
    sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // the key then lasts as long as the page
  }
}

function authHeaders(extra = {}) {
  const h = { ...extra };
  const key = currentKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

let keyPrompt = null;  // the pending askKey() promise: one form at a time

// Shows the key form; resolves true once the server accepted a key, false when cancelled.
function askKey(message) {
  if (keyPrompt) return keyPrompt;
  keyPrompt = new Promise((resolve) => {
    const d = ui.keyDialog;
    ui.keyError.hidden = !message;
    ui.keyError.textContent = message || "";
    ui.keyInput.value = "";
    const finish = (ok) => {
      ui.keyForm.removeEventListener("submit", onSubmit);
      ui.keyCancel.removeEventListener("click", onCancel);
      d.removeEventListener("cancel", onCancel);
      if (d.open) d.close();
      keyPrompt = null;
      resolve(ok);
      ui.prompt.focus();
    };
    const onSubmit = async (e) => {
      e.preventDefault();
      const key = ui.keyInput.value.trim();
      if (!key) return;
      ui.keyError.hidden = true;
      let r;
      try {
        r = await fetch("/v1/models", { headers: { Authorization: `Bearer ${key}` } });
      } catch (err) {
        ui.keyError.textContent = `The server cannot be reached: ${err.message}`;
        ui.keyError.hidden = false;
        return;
      }
      if (r.status === 401) {
        ui.keyError.textContent = "The server did not accept this key. Check it and try again.";
        ui.keyError.hidden = false;
        ui.keyInput.select();
        return;
      }
      saveKey(key);
      if (r.ok) showModel(await r.json().catch(() => null));
      finish(true);
    };
    const onCancel = (e) => {
      e.preventDefault();
      finish(false);
    };
    ui.keyForm.addEventListener("submit", onSubmit);
    ui.keyCancel.addEventListener("click", onCancel);
    d.addEventListener("cancel", onCancel);
    d.showModal();
    ui.keyInput.focus();
  });
  return keyPrompt;
}
function showModel(list) {
  const id = list && Array.isArray(list.data) && list.data[0] && list.data[0].id;
  ui.model.textContent = id ? `model ${id}` : "model unknown";
  if (id) document.title = `${id} · llada2 chat`;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: authHeaders() });
    if (r.status === 401) {
      ui.model.textContent = "API key needed";
      await askKey();  // shows the model once the key is accepted
      return;
    }
    if (!r.ok) {
      ui.model.textContent = `model list: HTTP ${r.status}`;
      return;
    }
    showModel(await r.json());
  } catch (err) {
    ui.model.textContent = `server not reachable (${err.message})`;
  }
}

// ---- the conversation ------------------------------------------------------------------------

const history = [];  // {role, content} of the turns that got an answer
let running = null;  // {controller, answer} while an answer streams

function nearBottom() {
  const el = ui.scroller;
  return el.scrollHeight - el.scrollTop - el.clientHeight < 120;
}

function scrollToEnd() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

function addMessage(role) {
  ui.welcome.hidden = true;
  const article = document.createElement("article");
  article.className = `msg ${role}`;
  const who = document.createElement("h2");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "llada2";
  const body = document.createElement("div");
  body.className = "body";
  article.append(who, body);
  ui.messages.appendChild(article);
  return { article, body };
}

function addUserMessage(text) {
  const { body } = addMessage("user");
  body.appendChild(renderMarkdown(text));
  scrollToEnd();
}

// An assistant answer being streamed: its text, canvas and stats.
class Answer {
  constructor(showCanvas) {
    const { article, body } = addMessage("assistant");
    this.article = article;
    this.text = document.createElement("div");
    this.text.className = "md";
    body.appendChild(this.text);
    article.setAttribute("aria-busy", "true");
    this.raw = "";
    this.canvas = showCanvas ? new LiveCanvas(document) : null;
    if (this.canvas) body.appendChild(this.canvas.root);
    this.footer = document.createElement("footer");
    this.footer.className = "stats";
    body.appendChild(this.footer);
    this.renderScheduled = false;
    this.status("waiting for the server");
  }

  status(text) {
    this.footer.textContent = text;
    this.footer.classList.toggle("pending", true);
  }

  append(delta) {
    this.raw += delta;
    if (this.renderScheduled) return;
    this.renderScheduled = true;
    requestAnimationFrame(() => this.render());
  }

  render() {
    this.renderScheduled = false;
    const stick = nearBottom();
    this.text.replaceChildren(renderMarkdown(this.raw));
    if (stick) scrollToEnd();
  }

  frame(f) {
    if (!this.canvas) return;
    const stick = nearBottom();
    this.canvas.push(f);
    this.status("refining");
    if (stick) requestAnimationFrame(scrollToEnd);
  }

  // The answer is over: the final text replaces the canvas.
  finish(outcome, stats) {
    this.render();
    this.article.dataset.raw = this.raw;
    this.article.dataset.outcome = outcome;
    this.article.removeAttribute("aria-busy");
    const frames = this.canvas ? this.canvas.frames : 0;
    if (this.canvas) {
      // The canvas collapses to the final text; a button replays its frames (a fast machine refines
      // a block quicker than the eye can follow).
      const canvas = this.canvas;
      canvas.root.remove();
      this.canvas = null;
      if (frames) this.replayButton = replayButton(canvas, this.footer);
    }
    this.footer.classList.remove("pending");
    this.footer.replaceChildren();
    const parts = [];
    if (stats && stats.diffusion) {
      const d = stats.diffusion;
      const tokens = stats.usage ? stats.usage.completion_tokens : undefined;
      if (tokens !== undefined) parts.push(["tokens", tokens]);
      parts.push(["forwards", d.forwards]);
      parts.push(["tokens / forward", fmt(d.tokens_per_forward, 2)]);
      if (tokens !== undefined && d.seconds > 0) parts.push(["tokens / s", fmt(tokens / d.seconds, 1)]);
      parts.push(["seconds", fmt(d.seconds, 2)]);
    }
    if (frames) parts.push(["canvas frames", frames]);
    for (const [label, value] of parts) {
      const s = document.createElement("span");
      s.className = "stat";
      s.dataset.stat = label;
      const v = document.createElement("strong");
      v.textContent = String(value);
      s.append(v, document.createTextNode(` ${label}`));
      this.footer.appendChild(s);
    }
    if (outcome === "stopped") {
      const s = document.createElement("span");
      s.className = "stat stopped";
      s.textContent = "stopped";
      this.footer.appendChild(s);
    }
    if (stats && stats.finish_reason === "length") {
      const s = document.createElement("span");
      s.className = "stat";
      s.textContent = "reached max tokens";
      this.footer.appendChild(s);
    }
  }

  error(message) {
    const box = document.createElement("div");
    box.className = "error";
    box.setAttribute("role", "alert");
    const title = document.createElement("strong");
    title.textContent = "Error: ";
    box.append(title, document.createTextNode(message));
    this.article.querySelector(".body").insertBefore(box, this.footer);
    this.article.classList.add("failed");
  }
}

// "Replay the diffusion": shows the answer's canvas above `footer` and draws its frames again at a
// readable pace; pressed during the replay, it stops and hides the canvas.
function replayButton(canvas, footer) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button small ghost replay";
  const idle = `▶ Replay the diffusion (${canvas.frames} steps)`;
  button.textContent = idle;
  button.setAttribute("aria-label", `Replay the diffusion of this answer, ${canvas.frames} steps`);
  button.addEventListener("click", () => {
    if (canvas.replaying) {
      canvas.stopReplay();
      canvas.root.remove();
      button.textContent = idle;
      return;
    }
    if (!canvas.root.isConnected) footer.before(canvas.root);
    button.textContent = "■ Stop the replay";
    canvas.replay(REPLAY_STEP_MS, () => {
      button.textContent = "▶ Replay again";
    });
  });
  footer.after(button);
  return button;
}

const REPLAY_STEP_MS = 220;

function fmt(x, digits) {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "–";
}

// The message of an OpenAI-shaped error body, or of whatever else came back.
async function errorMessage(r) {
  const text = await r.text().catch(() => "");
  try {
    const e = JSON.parse(text).error;
    if (e && e.message) return `${r.status} ${e.code || e.type || ""}: ${e.message}`.replace(" :", ":");
  } catch {
    // not JSON
  }
  return `HTTP ${r.status} ${r.statusText}${text ? `: ${text.slice(0, 300)}` : ""}`;
}

// Reads server-sent events from a fetch body: calls onEvent(name, data) for each.
async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let at;
    while ((at = buf.search(/\r?\n\r?\n/)) >= 0) {
      const raw = buf.slice(0, at);
      buf = buf.slice(at + (buf[at] === "\r" ? 4 : 2));
      let name = "message";
      const data = [];
      for (const line of raw.split(/\r?\n/)) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

function setRunning(on) {
  ui.stop.hidden = !on;
  ui.send.disabled = on;
  ui.composer.setAttribute("aria-busy", String(on));
}

async function ask(text) {
  const userTurn = { role: "user", content: text };
  addUserMessage(text);
  const messages = [...history, userTurn];
  const settings = requestSettings();
  const answer = new Answer(!!settings.llada2_canvas);
  const controller = new AbortController();
  running = { controller, answer };
  setRunning(true);
  scrollToEnd();
  let stats = null;
  let failed = false;
  let finished = false;  // data: [DONE] arrived
  let outcome = "done";
  try {
    for (let attempt = 0; ; attempt++) {
      const r = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json" }),
        body: JSON.stringify({ messages, stream: true, ...settings }),
        signal: controller.signal,
      });
      if (r.status === 401 && attempt === 0) {
        await r.text().catch(() => "");
        answer.status("waiting for the API key");
        if (await askKey(currentKey() ? "The server did not accept the stored key." : "")) continue;
        answer.error("The server needs an API key (started with --api-key).");
        failed = true;
        break;
      }
      if (!r.ok) {
        answer.error(await errorMessage(r));
        failed = true;
        break;
      }
      answer.status("waiting for the first step");
      await readEvents(r.body, (name, data) => {
        if (name === "canvas") {
          const f = JSON.parse(data);
          if (f.index === 0) answer.frame(f);
          return;
        }
        if (data === "[DONE]") {
          finished = true;
          return;
        }
        const chunk = JSON.parse(data);
        if (chunk.error) {
          answer.error(chunk.error.message || JSON.stringify(chunk.error));
          failed = true;
          return;
        }
        const choice = (chunk.choices || []).find((c) => c.index === 0);
        if (choice && choice.delta && typeof choice.delta.content === "string" && choice.delta.content)
          answer.append(choice.delta.content);
        if (choice && choice.finish_reason) stats = { ...(stats || {}), finish_reason: choice.finish_reason };
        if (chunk.usage || chunk.diffusion)
          stats = { ...(stats || {}), usage: chunk.usage, diffusion: chunk.diffusion };
      });
      if (!finished && !failed) {
        answer.error("The answer ended early: the server closed the connection.");
        failed = true;
      }
      break;
    }
  } catch (err) {
    if (err.name === "AbortError") {
      outcome = "stopped";
    } else {
      answer.error(`The connection failed: ${err.message}. Is the server still running?`);
      failed = true;
    }
  }
  if (failed && outcome !== "stopped") outcome = "error";
  answer.finish(outcome, stats);
  // A turn enters the history once it has an answer (a stopped one keeps what arrived).
  if (!failed && (outcome === "done" || answer.raw)) {
    history.push(userTurn, { role: "assistant", content: answer.raw });
  }
  if (running && running.answer === answer) running = null;
  setRunning(false);
}

function stop() {
  if (running) running.controller.abort();
}

function newChat() {
  stop();
  history.length = 0;
  ui.messages.replaceChildren();
  ui.welcome.hidden = false;
  ui.prompt.value = "";
  autosize();
  ui.prompt.focus();
}

function autosize() {
  ui.prompt.style.height = "auto";
  ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight, 240)}px`;
}

function submit() {
  const text = ui.prompt.value.trim();
  if (!text || running) return;
  ui.prompt.value = "";
  autosize();
  ask(text);
}

function init() {
  initSettings();
  ui.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
  });
  ui.prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  ui.prompt.addEventListener("input", autosize);
  ui.stop.addEventListener("click", () => {
    stop();
    ui.prompt.focus();
  });
  ui.newChat.addEventListener("click", newChat);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && running && !ui.keyDialog.open) {
      e.preventDefault();
      stop();
      ui.prompt.focus();
    }
  });
  if (CONFIG.api_key && !currentKey()) {
    ui.model.textContent = "API key needed";
    askKey().then((ok) => {
      if (!ok) ui.model.textContent = "API key needed: send a message to enter it";
    });
  } else {
    loadModel();
  }
  ui.prompt.focus();
}

init();
