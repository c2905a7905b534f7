#!/usr/bin/env bash
# Builds the tokenizer.json files used to measure github.com/sugarme/tokenizer
# against the Hugging Face oracle (tokenizers 0.23.2) on models stoker does not
# reimplement, and the goldens the Go tests compare with (.notes/sugarme.md):
#
#   sample.txt            every 7th corpus document before the 63 hostile lines,
#                         then the 63 hostile lines (5,456 documents; sampleIndices
#                         in sugarme_test.go picks the same ones)
#   ../tokenizers/wordlevel-bert-uncased.json  (committed)
#       WordLevel over the bert-base-uncased vocabulary, unk [UNK], BertNormalizer
#       (clean_text, handle_chinese_chars, strip_accents, lowercase all true),
#       Whitespace pre-tokenizer, BertProcessing, added tokens as bert-base-uncased
#   golden-wordlevel-bert-uncased-sample.jsonl.gz        (committed)
#   golden-wordlevel-split-sample.jsonl.gz               (committed)
#       the same WordLevel with no normalizer and the WhitespaceSplit pre-tokenizer
#       (wordLevelSplitJSON in sugarme_test.go builds the same json)
#
# With --all it also writes, into $OUT (default /tmp/sugarme-check), json and
# golden files not committed (too large, or too slow for the library to run in
# tests) for testdata/sugarmecheck:
#   unigram-bert-freq.json  Unigram, vocabulary = bert-base-uncased pieces ("▁"+word
#       for word-initial tokens, the bare word too at a 2-nat penalty, the piece
#       after "##" for continuations), score = ln((n+1)/N) with n the token's count
#       in golden-bert-base-uncased.jsonl.gz (the oracle on the corpus), <unk> id 0;
#       Metaspace(▁, prepend_scheme always), no normalizer
#   unigram-bert-freq-lower.json  the same with the Lowercase normalizer
#   bpe-plain.json  gpt2.json's vocabulary and merges plus <unk>, unk_token <unk>,
#       no normalizer, WhitespaceSplit pre-tokenizer (no byte-level), no post-processor
#   wordlevel-*.json variants and a golden-*.jsonl for each.
set -euo pipefail
cd "$(dirname "$0")"
ORACLE=${ORACLE:-/work/shared/tools/oracle-tokenize}
OUT=${OUT:-/tmp/sugarme-check}
mkdir -p "$OUT"
zcat corpus.txt.gz | /usr/bin/python3 -c '
import sys
lines = sys.stdin.buffer.read().split(b"\n")[:-1]
n = len(lines)
idx = [i for i in range(n - 63) if i % 7 == 0] + list(range(n - 63, n))
sys.stdout.buffer.write(b"".join(lines[i] + b"\n" for i in idx))
' > "$OUT/sample.txt"
/usr/bin/python3 - "$OUT" <<'PY'
import collections, copy, gzip, json, math, sys
out = sys.argv[1]
bert = json.load(open('../tokenizers/bert-base-uncased.json'))
gpt2 = json.load(open('../tokenizers/gpt2.json'))
vocab = bert['model']['vocab']
def wordlevel(norm, pre):
    d = copy.deepcopy(bert)
    d['model'] = {'type': 'WordLevel', 'vocab': vocab, 'unk_token': '[UNK]'}
    d['normalizer'], d['pre_tokenizer'], d['decoder'] = norm, pre, None
    return d
bn = {'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True,
      'strip_accents': True, 'lowercase': True}
files = {
    'wordlevel-bert-uncased': wordlevel(bn, {'type': 'Whitespace'}),
    'wordlevel-split': wordlevel(None, {'type': 'WhitespaceSplit'}),
    'wordlevel-bert-bertpre': wordlevel(bn, {'type': 'BertPreTokenizer'}),
    'wordlevel-lower-split': wordlevel({'type': 'Lowercase'}, {'type': 'WhitespaceSplit'}),
    'wordlevel-whitespace': wordlevel(None, {'type': 'Whitespace'}),
}
count = collections.Counter()
for line in gzip.open('golden-bert-base-uncased.jsonl.gz', 'rt'):
    count.update(json.loads(line)['ids'])
total = sum(count.values())
pieces = {}
for tok, tid in sorted(vocab.items(), key=lambda kv: kv[1]):
    if tok.startswith('[') and tok.endswith(']'):
        continue
    s = math.log((count[tid] + 1) / total)
    if tok.startswith('##'):
        pieces[tok[2:]] = max(pieces.get(tok[2:], -1e9), s)
    else:
        pieces['\u2581' + tok] = max(pieces.get('\u2581' + tok, -1e9), s)
        pieces.setdefault(tok, s - 2.0)
uv = [['<unk>', 0.0]] + [[p, round(s, 6)] for p, s in sorted(pieces.items(), key=lambda x: (-x[1], x[0]))]
def unigram(norm):
    return {'version': '1.0', 'truncation': None, 'padding': None,
            'added_tokens': [{'id': 0, 'content': '<unk>', 'single_word': False, 'lstrip': False,
                              'rstrip': False, 'normalized': False, 'special': True}],
            'normalizer': norm,
            'pre_tokenizer': {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always', 'split': True},
            'post_processor': None, 'decoder': None,
            'model': {'type': 'Unigram', 'unk_id': 0, 'vocab': uv, 'byte_fallback': False}}
files['unigram-bert-freq'] = unigram(None)
files['unigram-bert-freq-lower'] = unigram({'type': 'Lowercase'})
g = copy.deepcopy(gpt2)
unk = len(g['model']['vocab'])
g['model']['vocab']['<unk>'] = unk
g['model']['unk_token'] = '<unk>'
g['normalizer'], g['pre_tokenizer'], g['post_processor'], g['decoder'] = None, {'type': 'WhitespaceSplit'}, None, None
g['added_tokens'].append({'id': unk, 'content': '<unk>', 'single_word': False, 'lstrip': False,
                          'rstrip': False, 'normalized': False, 'special': True})
files['bpe-plain'] = g
for name, d in files.items():
    json.dump(d, open(f'{out}/{name}.json', 'w'), ensure_ascii=False)
PY
cp "$OUT/wordlevel-bert-uncased.json" ../tokenizers/wordlevel-bert-uncased.json
slim() { /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    print(json.dumps({"i": d["i"], "ids": d["ids"], "type_ids": d["type_ids"]}, separators=(",", ":")))
'; }
for name in wordlevel-bert-uncased wordlevel-split; do
  "$ORACLE" "$OUT/$name.json" < "$OUT/sample.txt" | slim | gzip -n -9 > "golden-$name-sample.jsonl.gz"
done
if [[ ${1:-} == --all ]]; then
  for f in "$OUT"/*.json; do
    "$ORACLE" "$f" < "$OUT/sample.txt" > "${f%.json}.golden.jsonl"
  done
fi
echo "done; files in $OUT" >&2
