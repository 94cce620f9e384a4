// A small Markdown renderer for model answers. It builds DOM nodes and sets only textContent and a
// few checked attributes, so no text of the answer is ever parsed as HTML: "<b>" in an answer shows
// as "<b>". Covered: paragraphs (single newlines break lines), headings, fenced code blocks, inline
// code, bold, italic, strikethrough, links and bare URLs (http, https and mailto only), bullet and
// numbered lists (nested by indentation), block quotes and rules. An unclosed fence runs to the end,
// so a half-streamed code block already shows as code.

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const SAFE_URL = /^(https?:\/\/|mailto:)/i;

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function el(doc, tag, parent, cls) {
  const e = doc.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

// The width of leading spaces (a tab counts 4).
function indentOf(line) {
  let w = 0;
  for (const c of line) {
    if (c === " ") w += 1;
    else if (c === "\t") w += 4 - (w % 4);
    else break;
  }
  return w;
}

// `line` less up to `n` columns of leading whitespace.
function dedent(line, n) {
  let w = 0, i = 0;
  while (i < line.length && w < n && (line[i] === " " || line[i] === "\t")) {
    w += line[i] === "\t" ? 4 - (w % 4) : 1;
    i++;
  }
  return line.slice(i);
}

function renderBlocks(lines, parent, doc, tight = false) {
  let i = 0;
  const n = lines.length;
  while (i < n) {
    const line = lines[i];
    if (line.trim() === "") {
      i++;
      continue;
    }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const code = [];
      i++;
      while (i < n) {
        const close = lines[i].trim();
        if (close.startsWith(fence[0].repeat(fence.length)) && /^(`+|~+)$/.test(close) && close[0] === fence[0]) {
          i++;
          break;
        }
        code.push(lines[i]);
        i++;
      }
      const pre = el(doc, "pre", parent, "md-code");
      const c = el(doc, "code", pre);
      const lang = (m[2] || "").replace(/[^\w+#.-]/g, "");
      if (lang) {
        c.className = "language-" + lang;
        pre.dataset.lang = lang;
      }
      c.textContent = code.join("\n");
      continue;
    }
    if ((m = HEADING.exec(line))) {
      // The page's own headings are h1 and h2: an answer's "#" is an h3.
      const level = Math.min(6, m[1].length + 2);
      const h = el(doc, "h" + level, parent, "md-h" + m[1].length);
      renderInline(m[2] || "", h, doc);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      el(doc, "hr", parent);
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < n && (m = QUOTE.exec(lines[i]))) {
        inner.push(m[1]);
        i++;
      }
      renderBlocks(inner, el(doc, "blockquote", parent), doc);
      continue;
    }
    if ((m = ITEM.exec(line))) {
      i = renderList(lines, i, parent, doc);
      continue;
    }
    // A paragraph: lines up to a blank line or the start of another block.
    const para = [line.trim()];
    i++;
    while (i < n && lines[i].trim() !== "" && !startsBlock(lines[i])) {
      para.push(lines[i].trim());
      i++;
    }
    renderInline(para.join("\n"), tight ? parent : el(doc, "p", parent), doc);
  }
}

// A list starting at lines[start]; returns the index of the first line after it.
function renderList(lines, start, parent, doc) {
  const first = ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const marker = ordered ? first[2].slice(-1) : first[2];
  const list = el(doc, ordered ? "ol" : "ul", parent);
  if (ordered) {
    const s = parseInt(first[2], 10);
    if (s !== 1) list.start = s;
  }
  const items = [];
  let loose = false;
  let i = start;
  const n = lines.length;
  while (i < n) {
    const m = ITEM.exec(lines[i]);
    const same = m && (/\d/.test(m[2]) === ordered) && (ordered ? m[2].slice(-1) === marker : m[2] === marker);
    if (!same) break;
    const content = indentOf(lines[i]) + m[2].length + 1;
    const body = [m[3] || ""];
    i++;
    while (i < n) {
      const l = lines[i];
      if (l.trim() === "") {
        // A blank line continues the item only when indented content follows.
        let j = i + 1;
        while (j < n && lines[j].trim() === "") j++;
        if (j < n && indentOf(lines[j]) >= content) {
          for (; i < j; i++) body.push("");
          loose = true;
          continue;
        }
        if (j < n && ITEM.test(lines[j]) && indentOf(lines[j]) < content) loose = true;
        break;
      }
      if (indentOf(l) >= content) {
        body.push(dedent(l, content));
      } else if (ITEM.test(l) || startsBlock(l)) {
        break;
      } else {
        body.push(l.trim());  // a lazy continuation of the item's paragraph
      }
      i++;
    }
    items.push(body);
    // Blank lines between items make a loose list (paragraphs inside).
    if (i < n && lines[i].trim() === "") {
      let j = i;
      while (j < n && lines[j].trim() === "") j++;
      const next = j < n ? ITEM.exec(lines[j]) : null;
      if (next && indentOf(lines[j]) < content) {
        loose = true;
        i = j;
      }
    }
  }
  for (const body of items) renderBlocks(body, el(doc, "li", list), doc, !loose);
  return i;
}

const PUNCT = /[!-/:-@[-`{-~]/;

// Where the run of `delim` that closes an emphasis opened at `from` is, or -1.
function findClose(text, delim, from) {
  let i = from;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\") {
      i += 2;
      continue;
    }
    if (c === "`") {  // code spans are opaque
      const run = /^`+/.exec(text.slice(i))[0];
      const end = text.indexOf(run, i + run.length);
      if (end < 0) return -1;
      i = end + run.length;
      continue;
    }
    if (text.startsWith(delim, i) && i > from && !/\s/.test(text[i - 1])) {
      // "_" closes only at a word's end; "*" may close inside one.
      const after = text[i + delim.length];
      if (delim[0] === "_" && after !== undefined && /[\p{L}\p{N}]/u.test(after)) {
        i++;
        continue;
      }
      // "*" must not be the start of "**" when closing a single "*".
      if (delim.length === 1 && text[i + 1] === delim) {
        i += 2;
        continue;
      }
      return i;
    }
    i++;
  }
  return -1;
}

function appendText(parent, doc, s) {
  if (!s) return;
  const parts = s.split("\n");
  parts.forEach((p, k) => {
    if (k > 0) el(doc, "br", parent);
    if (p) parent.appendChild(doc.createTextNode(p));
  });
}

function link(parent, doc, href) {
  const a = el(doc, "a", parent);
  a.href = href;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  return a;
}

export function renderInline(text, parent, doc = document) {
  let buf = "";
  let i = 0;
  const flush = () => {
    appendText(parent, doc, buf);
    buf = "";
  };
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    if (c === "\\" && i + 1 < text.length && PUNCT.test(text[i + 1])) {
      buf += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      const run = /^`+/.exec(rest)[0];
      const end = text.indexOf(run, i + run.length);
      if (end >= 0 && text[end + run.length] !== "`") {
        flush();
        let code = text.slice(i + run.length, end).replace(/\n/g, " ");
        if (code.length > 2 && code.startsWith(" ") && code.endsWith(" ") && code.trim()) code = code.slice(1, -1);
        el(doc, "code", parent, "md-inline").textContent = code;
        i = end + run.length;
        continue;
      }
      buf += run;
      i += run.length;
      continue;
    }
    if ((c === "*" || c === "_" || c === "~") && !(c === "_" && i > 0 && /[\p{L}\p{N}]/u.test(text[i - 1]))) {
      const delim = rest.startsWith(c + c) ? c + c : c === "~" ? null : c;
      if (delim && text[i + delim.length] !== undefined && !/\s/.test(text[i + delim.length])) {
        const end = findClose(text, delim, i + delim.length);
        if (end > i + delim.length) {
          flush();
          const tag = c === "~" ? "del" : delim.length === 2 ? "strong" : "em";
          renderInline(text.slice(i + delim.length, end), el(doc, tag, parent), doc);
          i = end + delim.length;
          continue;
        }
      }
      buf += delim || c;
      i += (delim || c).length;
      continue;
    }
    if (c === "[") {
      const m = /^\[([^\]\n]+)\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+"[^"\n]*")?\s*\)/.exec(rest);
      if (m) {
        const href = m[2].replace(/^<|>$/g, "");
        if (SAFE_URL.test(href)) {
          flush();
          renderInline(m[1], link(parent, doc, href), doc);
        } else {
          buf += m[1];  // a link to anything else shows as its text
        }
        i += m[0].length;
        continue;
      }
    }
    if (c === "<") {
      const m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(rest);
      if (m) {
        flush();
        link(parent, doc, m[1]).textContent = m[1];
        i += m[0].length;
        continue;
      }
    }
    if ((c === "h" || c === "H") && (i === 0 || !/[\p{L}\p{N}]/u.test(text[i - 1]))) {
      const m = /^https?:\/\/[^\s<>"]+/i.exec(rest);
      if (m) {
        const url = m[0].replace(/[.,;:!?'")\]]+$/, "");
        if (url.length > 8) {
          flush();
          link(parent, doc, url).textContent = url;
          i += url.length;
          continue;
        }
      }
    }
    buf += c;
    i++;
  }
  flush();
}

// The answer `text` as a DocumentFragment.
export function renderMarkdown(text, doc = document) {
  const frag = doc.createDocumentFragment();
  renderBlocks(String(text).replace(/\r\n?/g, "\n").split("\n"), frag, doc);
  return frag;
}
