const tk = require('tokenizers'); const fs = require('fs');
let seed = Number(process.argv[2] || 1);
function rnd() { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; }
const pick = a => a[Math.floor(rnd() * a.length)];
const pools = [
  () => pick(["hello", "World", "THE", "don't", "WE'LL", "it'S", "I'm", "they'Ve", "'d", "x'ſ", "ſtop", "Kelvin", "naïve", "İstanbul", "ǅ", "ﬁ", "ß"]),
  () => pick([" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "\u00a0", "\u3000", "\u2028", "\u0085", "\u180e", "\u200b", "\ufeff", "\u2009"]),
  () => String(Math.floor(rnd() * 1e7)),
  () => pick(["!", "?", "...", "—", "(", ")", "[", "]", "{}", "\"", "'", "`", "@", "#", "$%", "^&*", "<", ">", "/", "\\", "|", "~", "…", "«»", "、", "。", "！"]),
  () => pick(["日本語", "中文字符", "한국어", "العربية", "हिन्दी", "ภาษาไทย", "Ελληνικά", "русский", "עברית", "ქართული", "தமிழ்", "ພາສາລາວ", "ខ្មែរ", "መንግስት"]),
  () => pick(["👩‍❤️‍💋‍👨", "👍🏽", "🇺🇸", "🎉", "😀😃", "🏳️‍🌈", "👨‍👩‍👧‍👦", "✋🏿", "©️", "1️⃣"]),
  () => "e" + pick(["\u0301", "\u0301\u0327", "\u0327\u0301", "\u0323\u0302", "\u0302\u0323", "\u0308\u0304", "\u1ac1", "\u0898", "\u07fd"]),
  () => pick(["\u00e9", "\u1ec7", "\u01d5", "\u212b", "\u2126", "\u00c5", "A\u030a", "\u1e9b\u0323", "\uac00", "\u1100\u1161\u11a8", "\u{11935}\u{11930}", "\u{1D15E}", "\u{1D157}\u{1D165}", "\u0f73", "\u0f71\u0f72"]),
  () => String.fromCodePoint(pick([0x1C89, 0x1C8A, 0xA7CB, 0x10D50, 0x10D70, 0x11F04, 0x1E4F0, 0x16130, 0x105C0, 0x1CC00, 0x1FA75, 0x113B8, 0x11F00, 0x2FFC, 0x31EF, 0x1B4E, 0x10EC2, 0x16D40])),
  () => { let c; do { c = Math.floor(rnd() * 0x30000); } while (c >= 0xD800 && c <= 0xDFFF); return String.fromCodePoint(c); },
  () => pick(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|begin_of_text|>", "<|eot_id|>", "<｜begin▁of▁sentence｜>", "<bos>", "<eos>", "<start_of_turn>", "<|mask|>", "<role>", "</role>", "<|role_end|>", "<pad>", "<unk>", "<|reserved_special_token_5|>", "[MASK]"]),
  () => pick(["ab", "xy", "zz"]).repeat(1 + Math.floor(rnd() * 400)),
  () => pick(["def f(x):\n    return x**2\n", "int main() { return 0; }", "for (i=0;i<10;i++) {}", "<div class=\"a\">", "SELECT * FROM t;", "    indented\n\tline"]),
];
const N = Number(process.argv[3] || 3000);
const texts = [];
for (let i = 0; i < N; i++) {
  let s = ""; const k = 1 + Math.floor(rnd() * 12);
  for (let j = 0; j < k; j++) s += pick(pools)();
  texts.push(s);
}
const names = ["ling-synth", "qwen3", "llama3", "deepseek_v3", "gemma3"];
const dir = process.env.LLADA2_TOK_DATA || `${__dirname}/..`;
(async () => {
  fs.writeFileSync("in.jsonl", texts.map(t => JSON.stringify({text: t})).join("\n") + "\n");
  for (const n of names) {
    const t = tk.Tokenizer.fromFile(n === "ling-synth" ? `${dir}/ling-synth/tokenizer.json` : `${dir}/third_party/${n}/tokenizer.json`);
    const enc = await t.encodeBatch(texts, {addSpecialTokens: true});
    const ids = enc.map(e => e.getIds());
    fs.writeFileSync(`${n}.ids.jsonl`, ids.map(x => JSON.stringify({ids: x})).join("\n") + "\n");
    const dec = await t.decodeBatch(ids, false);
    const decs = await t.decodeBatch(ids, true);
    fs.writeFileSync(`${n}.dec.jsonl`, dec.map(x => JSON.stringify({text: x})).join("\n") + "\n");
    fs.writeFileSync(`${n}.decs.jsonl`, decs.map(x => JSON.stringify({text: x})).join("\n") + "\n");
  }
})();
