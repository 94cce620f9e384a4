const tk = require('tokenizers');
const fs = require('fs');
function mk(pre, norm=null) {
  const j = {version:"1.0", truncation:null, padding:null, added_tokens:[], normalizer:norm, pre_tokenizer:pre, post_processor:null, decoder:null,
    model:{type:"BPE", dropout:null, unk_token:null, continuing_subword_prefix:null, end_of_word_suffix:null, fuse_unk:false, byte_fallback:false, ignore_merges:false, vocab:{"a":0}, merges:[]}};
  return tk.Tokenizer.fromString(JSON.stringify(j));
}
const cps = [];
for (let c = 0; c <= 0x10FFFF; c++) { if (c >= 0xD800 && c <= 0xDFFF) continue; cps.push(c); }
let parts=[]; for (let i=0;i<cps.length;i+=10000) parts.push(String.fromCodePoint(...cps.slice(i,i+10000))); const all = parts.join("");
const out = {classes:{}, norm:{}};
const classes = ["\\p{L}","\\p{N}","\\p{P}","\\p{S}","\\p{M}","\\p{Z}","\\p{C}","\\p{Lu}","\\p{Ll}","\\p{Lt}","\\p{Lm}","\\p{Lo}","\\p{Mn}","\\p{Mc}","\\p{Me}","\\p{Nd}","\\p{Nl}","\\p{No}","\\p{Pc}","\\p{Pd}","\\p{Ps}","\\p{Pe}","\\p{Pi}","\\p{Pf}","\\p{Po}","\\p{Sm}","\\p{Sc}","\\p{Sk}","\\p{So}","\\p{Zs}","\\p{Zl}","\\p{Zp}","\\p{Cc}","\\p{Cf}","\\p{Co}","\\p{Cn}","\\s","\\w","\\d","(?i:s)","(?i:k)"];
for (const cls of classes) {
  const t = mk({type:"Split", pattern:{Regex:cls}, behavior:"Removed", invert:false});
  const pieces = t.getPreTokenizer().preTokenizeString(all);
  // unmatched ranges (char offsets = index in cps)
  const ranges = []; let prev = 0;
  for (const [, [s, e]] of pieces) { if (s > prev) ranges.push([cps[prev], cps[s-1]]); prev = e; }
  if (prev < cps.length) ranges.push([cps[prev], cps[cps.length-1]]);
  // merge ranges across the surrogate gap
  const merged = [];
  for (const r of ranges) { const l = merged[merged.length-1]; if (l && (l[1]+1 === r[0] || (l[1] === 0xD7FF && r[0] === 0xE000))) l[1] = r[1]; else merged.push(r.slice()); }
  out.classes[cls] = merged;
  process.stderr.write(cls + " " + merged.length + "\n");
}
const SEP = "\u0001";
for (const form of ["NFD","NFKD","NFC","NFKC"]) {
  const t = mk(null, {type: form});
  const n = t.getNormalizer();
  const diffs = {};
  for (let off = 0; off < cps.length; off += 50000) {
    const chunk = cps.slice(off, off + 50000).filter(c => c !== 1);
    const s = chunk.map(c => String.fromCodePoint(c)).join(SEP);
    const r = n.normalizeString(s).split(SEP);
    if (r.length !== chunk.length) throw new Error("sep mismatch " + form);
    for (let i = 0; i < chunk.length; i++) { const want = String.fromCodePoint(chunk[i]); if (r[i] !== want) diffs[chunk[i]] = [...r[i]].map(x => x.codePointAt(0)); }
  }
  out.norm[form] = diffs;
  process.stderr.write(form + " " + Object.keys(diffs).length + "\n");
}
// canonical ordering probes: "cp U+0334" swaps iff ccc(cp) > 1; "U+0345 cp" swaps iff 0 < ccc(cp) < 240
const t = mk(null, {type: "NFD"}); const n = t.getNormalizer();
const swapA = [], swapB = [];
for (let off = 0; off < cps.length; off += 50000) {
  const chunk = cps.slice(off, off + 50000).filter(c => c !== 1);
  const a = n.normalizeString(chunk.map(c => "a" + String.fromCodePoint(c) + "\u0334").join(SEP)).split(SEP);
  const b = n.normalizeString(chunk.map(c => "a\u0345" + String.fromCodePoint(c)).join(SEP)).split(SEP);
  for (let i = 0; i < chunk.length; i++) {
    const ca = [...a[i]].map(x => x.codePointAt(0)); const cb = [...b[i]].map(x => x.codePointAt(0));
    if (ca.length >= 2 && ca[1] === 0x334 && chunk[i] !== 0x334) swapA.push(chunk[i]);
    if (cb.length >= 2 && cb[1] !== 0x345) swapB.push(chunk[i]);
  }
}
out.swapA = swapA; out.swapB = swapB;
fs.writeFileSync("probe.json", JSON.stringify(out));
process.stderr.write("done\n");
