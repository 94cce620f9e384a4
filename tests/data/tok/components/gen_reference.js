// Reference outputs from npm tokenizers 0.23.2 for hand-written tokenizer.json snippets.
const tk = require('tokenizers');
const BYTES = tk.byteLevelAlphabet ? null : null;
function byteChars() {
  const cs = [];
  let n = 256;
  for (let b = 0; b < 256; b++) {
    const p = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    cs.push(String.fromCodePoint(p ? b : n++));
  }
  return cs;
}
const BC = byteChars();
function bytesSuffixVocab() {
  const v = {};
  BC.forEach((c, b) => { v[c] = b; v[c + "</w>"] = 256 + b; });
  return v;
}
function tokJson({normalizer = null, pre = null, post = null, decoder = null, model = null, added = []}) {
  return {version: "1.0", truncation: null, padding: null, added_tokens: added, normalizer, pre_tokenizer: pre,
          post_processor: post, decoder, model: model || {type: "BPE", dropout: null, unk_token: null,
          continuing_subword_prefix: null, end_of_word_suffix: "</w>", fuse_unk: false, byte_fallback: false,
          ignore_merges: false, vocab: bytesSuffixVocab(), merges: []}};
}
const BL = {type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false};
const withBL = (p) => ({type: "Sequence", pretokenizers: [p, BL]});
const TEXTS = ["Hello  world!", "  lead and trail  ", "\u00dcn\u00efc\u00f6d\u00e9 \u01c5 \u0130stanbul \ufb01 \u2460 \u212b", "a1b22c333 4444 \u0663\u0664",
  "tab\tnew\nline\r\n end", "", "   ", "x\u2014y\u2026z (a,b)", "don't WE'LL \u017ftop", "\u65e5\u672c\u8a9e \u30c6\u30ad\u30b9\u30c8",
  "e\u0301 \u00e9 A\u030a", "\u00a0nbsp\u3000ideo"];
const cases = [];
function add(name, cfg, texts = TEXTS, decodeIds = []) { cases.push({name, cfg, texts, decodeIds}); }

// normalizers
for (const t of ["NFC", "NFD", "NFKC", "NFKD", "Lowercase"]) add("normalizer_" + t, {normalizer: {type: t}, pre: BL});
add("normalizer_strip_both", {normalizer: {type: "Strip", strip_left: true, strip_right: true}, pre: BL});
add("normalizer_strip_left", {normalizer: {type: "Strip", strip_left: true, strip_right: false}, pre: BL});
add("normalizer_strip_right", {normalizer: {type: "Strip", strip_left: false, strip_right: true}, pre: BL});
add("normalizer_replace_string", {normalizer: {type: "Replace", pattern: {String: "  "}, content: "_"}, pre: BL});
add("normalizer_replace_regex", {normalizer: {type: "Replace", pattern: {Regex: "\\s+"}, content: " "}, pre: BL});
add("normalizer_prepend", {normalizer: {type: "Prepend", prepend: "\u2581"}, pre: BL});
add("normalizer_sequence", {normalizer: {type: "Sequence", normalizers: [{type: "NFKD"}, {type: "Lowercase"}, {type: "Replace", pattern: {String: " "}, content: "\u2581"}, {type: "Prepend", prepend: "\u2581"}]}, pre: BL});

// code points where Unicode versions differ: tokenizers' regex classes are Unicode 16, its
// normalization tables older (Dives Akuru U+11938 does not compose; U+1D15E is a composition exclusion)
const EDGE = ["\u{11935}\u{11930} \u{11938}", "\u{1D15E}\u{1D157}\u{1D165}", "\u{1C89}\u{1C8A}x \u{11F04}\u{11F05}", "\u{1E4F0}\u{1E4F1}7 \u{16130}",
  "a\u180Eb \u0085c\u00a0d", "\u07FDa\u0301\u0898", "it'\u017f IT'S \u212Aelvin", "\u{1F6DC}\u{1FA75}!", "\u1ac1\u0300e\u1ac1\u0301"];
const EDGE_SPLIT = {type: "Split", pattern: {Regex: "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}, behavior: "Isolated", invert: false};
for (const t of ["NFC", "NFD", "NFKC", "NFKD"]) add("unicode_edges_" + t, {normalizer: {type: t}, pre: withBL(EDGE_SPLIT)}, EDGE);
add("unicode_edges_classes", {pre: withBL({type: "Split", pattern: {Regex: "\\p{L}+|\\p{N}+|\\p{P}+|\\p{S}+|\\p{M}+|\\s+|\\w+"}, behavior: "Isolated", invert: false})}, EDGE);
add("unicode_edges_whitespace_pre", {pre: withBL({type: "Whitespace"})}, EDGE);

add("normalizer_strip_accents", {normalizer: {type: "Sequence", normalizers: [{type: "NFD"}, {type: "StripAccents"}]}, pre: BL});

// pre-tokenizers
add("pre_bert", {pre: withBL({type: "BertPreTokenizer"})});
add("pre_char_delimiter", {pre: withBL({type: "CharDelimiterSplit", delimiter: "a"})});
add("pre_bytelevel_regex", {pre: {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true}});
add("pre_bytelevel_prefix", {pre: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true}});
add("pre_bytelevel_noregex_prefix", {pre: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: false}});
for (const b of ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]) {
  for (const inv of [false, true]) {
    add(`pre_split_string_${b}_${inv ? "invert" : "plain"}`, {pre: withBL({type: "Split", pattern: {String: " "}, behavior: b, invert: inv})});
    add(`pre_split_regex_${b}_${inv ? "invert" : "plain"}`, {pre: withBL({type: "Split", pattern: {Regex: "\\p{N}|\\s+"}, behavior: b, invert: inv})});
  }
}
add("pre_digits_individual", {pre: withBL({type: "Digits", individual_digits: true})});
add("pre_digits_grouped", {pre: withBL({type: "Digits", individual_digits: false})});
for (const sch of ["always", "first", "never"]) for (const split of [true, false])
  add(`pre_metaspace_${sch}_${split ? "split" : "nosplit"}`, {pre: withBL({type: "Metaspace", replacement: "\u2581", prepend_scheme: sch, split})});
add("pre_whitespace", {pre: withBL({type: "Whitespace"})});
add("pre_whitespace_split", {pre: withBL({type: "WhitespaceSplit"})});
for (const b of ["Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"])
  add("pre_punctuation_" + b, {pre: withBL({type: "Punctuation", behavior: b})});
add("pre_sequence", {pre: {type: "Sequence", pretokenizers: [{type: "WhitespaceSplit"}, {type: "Digits", individual_digits: true}, {type: "Punctuation", behavior: "Isolated"}, BL]}});

// added tokens
const AT = (id, content, o = {}) => ({id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false, ...o});
const addedTexts = ["<s>hello</s>", "say <mask> now", "say<mask>now", "  <mask>  ", "word wordy sword word", "WORD Word", "<S> <s>", "abc<s>", "<mask><mask>"];
add("added_special_and_plain", {pre: BL, added: [AT(512, "<s>", {special: true}), AT(513, "</s>", {special: true}), AT(514, "word")]}, addedTexts, [[512, 104, 513], [514, 512]]);
add("added_single_word", {pre: BL, added: [AT(512, "word", {single_word: true})]}, addedTexts);
add("added_lstrip_rstrip", {pre: BL, added: [AT(512, "<mask>", {lstrip: true, rstrip: true, special: true})]}, addedTexts);
add("added_lstrip_only", {pre: BL, added: [AT(512, "<mask>", {lstrip: true, special: true})]}, addedTexts);
add("added_rstrip_only", {pre: BL, added: [AT(512, "<mask>", {rstrip: true, special: true})]}, addedTexts);
add("added_normalized", {normalizer: {type: "Lowercase"}, pre: BL, added: [AT(512, "word", {normalized: true}), AT(513, "<S>", {normalized: false, special: true})]}, addedTexts);
add("added_longest_match", {pre: BL, added: [AT(512, "<m"), AT(513, "<mask>"), AT(514, "mask>")]}, addedTexts);

add("added_bytelevel_prefix", {pre: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true}, added: [AT(512, "<s>", {special: true}), AT(513, "<mask>", {special: true, lstrip: true})]}, addedTexts);
add("added_metaspace_first", {pre: withBL({type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: true}), added: [AT(512, "<s>", {special: true}), AT(513, "<mask>", {special: true, rstrip: true})]}, addedTexts);
add("added_metaspace_always", {pre: withBL({type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: false}), added: [AT(512, "<s>", {special: true})]}, addedTexts);
add("added_normalized_prepend", {normalizer: {type: "Sequence", normalizers: [{type: "Prepend", prepend: "\u2581"}, {type: "Replace", pattern: {String: " "}, content: "\u2581"}]}, pre: BL, added: [AT(512, "<s>", {special: true}), AT(513, "word", {normalized: true})]}, addedTexts);

// post-processors
const TP = {type: "TemplateProcessing", single: [{SpecialToken: {id: "<s>", type_id: 0}}, {Sequence: {id: "A", type_id: 0}}, {SpecialToken: {id: "</s>", type_id: 0}}],
  pair: [{Sequence: {id: "A", type_id: 0}}, {Sequence: {id: "B", type_id: 1}}],
  special_tokens: {"<s>": {id: "<s>", ids: [512], tokens: ["<s>"]}, "</s>": {id: "</s>", ids: [513], tokens: ["</s>"]}}};
const sAdded = [AT(512, "<s>", {special: true}), AT(513, "</s>", {special: true})];
const postTexts = ["hi there", "", "<s>x</s>"];
add("post_template", {pre: BL, post: TP, added: sAdded, decoder: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true}}, postTexts, [[512, 104, 513]]);
add("post_bytelevel", {pre: BL, post: {type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true}}, postTexts);
add("post_bert", {pre: BL, post: {type: "BertProcessing", sep: ["</s>", 513], cls: ["<s>", 512]}, added: sAdded}, postTexts);
add("post_roberta", {pre: BL, post: {type: "RobertaProcessing", sep: ["</s>", 513], cls: ["<s>", 512], trim_offsets: true, add_prefix_space: true}, added: sAdded}, postTexts);
add("post_sequence", {pre: BL, post: {type: "Sequence", processors: [{type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true}, TP]}, added: sAdded}, postTexts);

// BPE options (char-level vocab, no byte level)
const charVocab = {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "abc": 5, "bc": 6, "<0x41>": 7, "<0xC3>": 8, "<0xA9>": 9, "\u2581": 10, "\u2581a": 11, "##b": 12, "##c": 13, "a##b": 14, "c</w>": 15, "ab</w>": 16, "b</w>": 17, "a</w>": 18, "abcab": 19, "ca": 20, "cab": 21};
const bpe = (o) => ({type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: charVocab, merges: [["a", "b"], ["ab", "c"], ["b", "c"], ["c", "a"], ["c", "ab"]], ...o});
const bpeTexts = ["abc", "abcab", "cab", "aXb", "aXYb", "A\u00e9", "zz", "bca", "a b c"];
const WS = {type: "WhitespaceSplit"};
add("bpe_merges_pairs", {pre: WS, model: bpe({})}, bpeTexts);
add("bpe_merges_strings", {pre: WS, model: bpe({merges: ["a b", "ab c", "b c", "c a", "c ab"]})}, bpeTexts);
add("bpe_ignore_merges", {pre: WS, model: bpe({ignore_merges: true, merges: ["b c", "a b", "c a"]})}, bpeTexts);
add("bpe_unk", {pre: WS, model: bpe({unk_token: "<unk>"})}, bpeTexts);
add("bpe_unk_fused", {pre: WS, model: bpe({unk_token: "<unk>", fuse_unk: true})}, bpeTexts);
add("bpe_byte_fallback", {pre: WS, model: bpe({unk_token: "<unk>", byte_fallback: true})}, bpeTexts);
add("bpe_prefix", {pre: WS, model: bpe({continuing_subword_prefix: "##", merges: [["a", "##b"]]})}, bpeTexts);
add("bpe_suffix", {pre: WS, model: bpe({end_of_word_suffix: "</w>", merges: [["a", "b</w>"]]})}, bpeTexts);

// decoders (decode only; token strings chosen to exercise each)
const decVocab = {"\u2581Hello": 0, "\u2581world": 1, "<0x41>": 2, "<0xE2>": 3, "<0x82>": 4, "<0xAC>": 5, "\u2581\u2581x": 6, "__y__": 7, "\u0120hi": 8, "\u010a": 9, "<0xFF>": 10, "ab": 11, "\u2581": 12, "<s>": 13};
const decModel = {type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: decVocab, merges: []};
const decIds = [[0, 1], [6, 0], [2, 3, 4, 5, 0], [3, 4], [10, 2], [7, 7], [8, 9, 8], [12, 11, 12], [13, 0, 13], [5, 11]];
const decAdded = [AT(13, "<s>", {special: true})];
const decs = {
  bytelevel: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true},
  metaspace_always: {type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true},
  metaspace_never: {type: "Metaspace", replacement: "\u2581", prepend_scheme: "never", split: true},
  metaspace_first: {type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: true},
  bytefallback: {type: "ByteFallback"},
  fuse: {type: "Fuse"},
  strip: {type: "Strip", content: "_", start: 2, stop: 1},
  replace: {type: "Replace", pattern: {String: "\u2581"}, content: " "},
  replace_regex: {type: "Replace", pattern: {Regex: "_+"}, content: "-"},
  bpe_decoder: {type: "BPEDecoder", suffix: "__"},
  sequence_sentencepiece: {type: "Sequence", decoders: [{type: "Replace", pattern: {String: "\u2581"}, content: " "}, {type: "ByteFallback"}, {type: "Fuse"}, {type: "Strip", content: " ", start: 1, stop: 0}]},
};
for (const [n, d] of Object.entries(decs)) add("decoder_" + n, {model: decModel, decoder: d, added: decAdded}, [], decIds);
add("decoder_none", {model: decModel, added: decAdded}, [], decIds);

(async () => {
  const out = [];
  for (const c of cases) {
    const j = tokJson(c.cfg);
    const s = JSON.stringify(j);
    const t = tk.Tokenizer.fromString(s);
    const rec = {name: c.name, json: s, texts: c.texts, ids: [], ids_no_special: [], decode_ids: c.decodeIds, decoded: [], decoded_skip: []};
    for (const x of c.texts) {
      rec.ids.push((await t.encode(x, null, {addSpecialTokens: true})).getIds());
      rec.ids_no_special.push((await t.encode(x, null, {addSpecialTokens: false})).getIds());
    }
    const allDecode = c.decodeIds.concat(rec.ids);
    rec.decode_ids = allDecode;
    for (const ids of allDecode) { rec.decoded.push(await t.decode(ids, false)); rec.decoded_skip.push(await t.decode(ids, true)); }
    out.push(rec);
  }
  require('fs').writeFileSync('ref.json', JSON.stringify(out));
  console.log(out.length, "cases");
})();
