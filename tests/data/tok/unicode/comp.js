const tk = require('tokenizers'); const fs = require('fs');
const seqs = JSON.parse(fs.readFileSync('/tmp/gen/compseq.json'));
const j = {version:"1.0", truncation:null, padding:null, added_tokens:[], normalizer:{type:"NFC"}, pre_tokenizer:null, post_processor:null, decoder:null,
    model:{type:"BPE", dropout:null, unk_token:null, continuing_subword_prefix:null, end_of_word_suffix:null, fuse_unk:false, byte_fallback:false, ignore_merges:false, vocab:{"a":0}, merges:[]}};
const n = tk.Tokenizer.fromString(JSON.stringify(j)).getNormalizer();
const keys = Object.keys(seqs); const r = n.normalizeString(keys.map(k => seqs[k]).join("\u0001")).split("\u0001");
const out = {};
keys.forEach((k, i) => { out[k] = r[i]; });
fs.writeFileSync('/tmp/gen/compres.json', JSON.stringify(out));
