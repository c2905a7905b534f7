#!/usr/bin/env bash
# Runs the Hugging Face oracle (tokenizers 0.23.2) over corpus.txt.gz and
# writes the goldens the Go tests compare against:
#
#   golden-<name>.jsonl.gz      no truncation
#   golden-<name>-128.jsonl.gz  --max-length 128
#
# for name in bert-base-uncased, bert-cased (bert-base-uncased's vocabulary
# with lowercase and strip_accents false), gpt2. Each line is
# {"i": n, "ids": [...], "type_ids": [...]} (tokens and offsets dropped).
set -euo pipefail
cd "$(dirname "$0")"
ORACLE=${ORACLE:-/work/shared/tools/oracle-tokenize}
TOK=../tokenizers
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$TOK/bert-base-uncased.json" "$tmp/bert-cased.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d['normalizer']['lowercase'] = False
d['normalizer']['strip_accents'] = False
json.dump(d, open(sys.argv[2], 'w'), ensure_ascii=False)
PY
zcat corpus.txt.gz > "$tmp/corpus.txt"
slim() { /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    print(json.dumps({"i": d["i"], "ids": d["ids"], "type_ids": d["type_ids"]}, separators=(",", ":")))
'; }
for name in bert-base-uncased bert-cased gpt2; do
  json=$TOK/$name.json
  [[ $name == bert-cased ]] && json=$tmp/bert-cased.json
  "$ORACLE" "$json" < "$tmp/corpus.txt" | slim | gzip -n -9 > "golden-$name.jsonl.gz"
  "$ORACLE" "$json" --max-length 128 < "$tmp/corpus.txt" | slim | gzip -n -9 > "golden-$name-128.jsonl.gz"
  echo "$name: done" >&2
done
