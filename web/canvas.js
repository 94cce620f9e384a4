// The live canvas of one answer: the active block's cells as the server's `event: canvas` frames
// report them (docs/server.md). Each cell is drawn as one of four kinds, told apart by shape as well
// as colour: masked (a dashed, hatched box), committed in this step (a solid underline), edited in
// this step (a double underline and a ↻ mark) and written in an earlier step (plain text).
//
// Frames can come faster than the screen redraws: they are merged until the next animation frame,
// so "this step" then means "since the last drawn step" and no commit or edit goes unseen. On a fast
// machine a block is final within a few frames of the screen, so the canvas keeps its frames and can
// replay them afterwards at a pace a person can follow (replay()).

const MAX_KEPT_FRAMES = 5000;  // frames kept for a replay; a longer answer replays its first ones

const SPECIAL = /^<\|[^|<>]{1,40}\|>$|^<\/?[a-z_]{1,20}>$/;

// What a cell shows: its text with newlines and tabs made visible.
function cellText(piece) {
  if (piece === "") return "∅";
  return piece.replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

export class LiveCanvas {
  constructor(doc = document) {
    this.doc = doc;
    this.block = -1;
    this.step = 0;  // frames of the current block
    this.frames = 0;  // frames received
    this.blocks = 0;
    this.tokens = null;  // the last frame's token ids
    this.cellsBefore = null;  // the last frame's cells (null: masked)
    this.pending = null;  // per cell: "committed" | "edited" since the last draw
    this.latest = null;
    this.scheduled = false;
    this.history = [];  // the frames received, for replay()
    this.timer = null;  // the replay's next step

    const root = doc.createElement("section");
    root.className = "canvas";
    root.setAttribute("aria-label", "Live canvas of the block being refined");
    const head = doc.createElement("div");
    head.className = "canvas-head";
    this.title = doc.createElement("span");
    this.title.className = "canvas-title";
    this.title.textContent = "waiting for the first step…";
    this.count = doc.createElement("span");
    this.count.className = "canvas-count";
    head.append(this.title, this.count);
    this.bar = doc.createElement("div");
    this.bar.className = "canvas-bar";
    this.barFill = doc.createElement("div");
    this.bar.appendChild(this.barFill);
    // The cells are redrawn every step: screen readers get the answer's text once it is final instead.
    this.cells = doc.createElement("div");
    this.cells.className = "canvas-cells";
    this.cells.setAttribute("aria-hidden", "true");
    root.append(head, this.bar, this.cells, legend(doc));
    this.root = root;
  }

  // One `event: canvas` frame: {index, block, tokens, cells, text}.
  push(frame) {
    const tokens = frame.tokens || [];
    const cells = Array.isArray(frame.cells) ? frame.cells : tokens.map(() => "?");
    this.frames++;
    if (this.history.length < MAX_KEPT_FRAMES) this.history.push({ block: frame.block, tokens, cells });
    this.show(frame.block, tokens, cells);
  }

  get replaying() {
    return this.timer !== null;
  }

  // Draws the kept frames again from the first, one every `ms` milliseconds; calls onEnd when the
  // last one is drawn (not when stopReplay() ends it early).
  replay(ms = 200, onEnd = () => {}) {
    this.stopReplay();
    this.block = -1;
    this.blocks = 0;
    const frames = this.history;
    let i = 0;
    this.root.classList.add("replaying");
    const next = () => {
      const f = frames[i++];
      this.show(f.block, f.tokens, f.cells);
      if (i < frames.length) {
        this.timer = setTimeout(next, ms);
      } else {
        this.timer = null;
        this.root.classList.remove("replaying");
        onEnd();
      }
    };
    if (frames.length) next();
  }

  stopReplay() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.root.classList.remove("replaying");
  }

  // Draws one frame's cells (at the next animation frame), each kind found against the previous frame.
  show(block, tokens, cells) {
    if (block !== this.block) {
      this.block = block;
      this.blocks++;
      this.step = 0;
      this.tokens = null;
      this.cellsBefore = null;
      this.pending = null;
    }
    this.step++;
    const pending = this.pending && this.pending.length === tokens.length ? this.pending : new Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      if (cells[i] === null) {
        pending[i] = undefined;
      } else if (!this.cellsBefore || this.cellsBefore[i] === null || this.cellsBefore[i] === undefined) {
        if (pending[i] !== "edited") pending[i] = "committed";
      } else if (this.tokens[i] !== tokens[i]) {
        pending[i] = "edited";
      }
    }
    this.pending = pending;
    this.tokens = tokens;
    this.cellsBefore = cells;
    this.latest = { block, cells, step: this.step };
    if (!this.scheduled) {
      this.scheduled = true;
      const raf = this.doc.defaultView && this.doc.defaultView.requestAnimationFrame;
      if (raf) raf(() => this.draw());
      else setTimeout(() => this.draw(), 16);
    }
  }

  draw() {
    this.scheduled = false;
    const f = this.latest;
    if (!f) return;
    const kinds = this.pending || [];
    const spans = this.cells.children;
    while (spans.length > f.cells.length) this.cells.lastChild.remove();
    while (spans.length < f.cells.length) this.cells.appendChild(this.doc.createElement("span"));
    let masked = 0;
    for (let i = 0; i < f.cells.length; i++) {
      const span = spans[i];
      const piece = f.cells[i];
      let cls;
      let text;
      if (piece === null) {
        masked++;
        cls = "cell masked";
        text = "";
      } else {
        cls = "cell " + (kinds[i] || "settled");
        text = cellText(piece);
        if (SPECIAL.test(piece)) cls += " special";
        if (piece.includes("\n")) cls += " newline";
        if (piece.trim() === "" && piece !== "") cls += " blank";
      }
      if (span.className !== cls) span.className = cls;
      if (span.textContent !== text) span.textContent = text;
    }
    this.pending = new Array(f.cells.length);  // drawn: the next draw shows only newer changes
    const total = f.cells.length;
    this.title.textContent = `${this.replaying ? "replay · " : ""}block ${f.block + 1} · step ${f.step}`;
    this.count.textContent = `${masked} of ${total} masked`;
    this.barFill.style.width = total ? `${(100 * (total - masked)) / total}%` : "0%";
    this.root.dataset.block = String(f.block);
    this.root.dataset.step = String(f.step);
    this.root.dataset.draws = String(Number(this.root.dataset.draws || 0) + 1);
  }
}

// The key of the canvas: each kind's look with its name.
export function legend(doc = document) {
  const ul = doc.createElement("ul");
  ul.className = "legend";
  ul.setAttribute("aria-label", "Legend");
  for (const [kind, sample, label] of [
    ["masked", "", "masked"],
    ["committed", "new", "committed now"],
    ["edited", "fix", "edited now"],
    ["settled", "text", "earlier"],
  ]) {
    const li = doc.createElement("li");
    const cell = doc.createElement("span");
    cell.className = "cell " + kind;
    cell.setAttribute("aria-hidden", "true");
    cell.textContent = sample;
    li.append(cell, doc.createTextNode(" " + label));
    ul.appendChild(li);
  }
  return ul;
}
