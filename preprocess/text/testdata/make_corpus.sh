#!/usr/bin/env bash
# Builds corpus.txt.gz: one document per line (LF), real multilingual text from
# Debian packages followed by hostile lines made here. Deterministic: same
# packages, same output. Needs: fortunes fortunes-de fortunes-it fortunes-es
# fortunes-ru fortunes-zh fortunes-cs fortunes-pl fortunes-br, manpages in
# several locales, unicode-data, base-files (common-licenses), python3.
#
#   ./make_corpus.sh            # writes corpus.txt.gz here (the hostile lines are its last lines)
set -euo pipefail
cd "$(dirname "$0")"
F=/usr/share/games/fortunes
/usr/bin/python3 - "$F" <<'PY'
import glob, gzip, os, sys
F = sys.argv[1]
out = []

def lines_of(paths, encoding_ok=True):
    for p in sorted(paths):
        if p.endswith('.dat') or os.path.isdir(p):
            continue
        data = gzip.open(p).read() if p.endswith('.gz') else open(p, 'rb').read()
        for raw in data.split(b'\n'):
            raw = raw.rstrip(b'\r') if False else raw
            if raw.strip() in (b'', b'%'):
                continue
            try:
                raw.decode('utf-8')
                valid = True
            except UnicodeDecodeError:
                valid = False
            if valid == encoding_ok:
                yield raw

def sample(name, paths, n):
    ls = list(lines_of(paths))
    step = max(1, len(ls) // n)
    got = ls[::step][:n]
    print(f'{name}: {len(got)} of {len(ls)} lines', file=sys.stderr)
    out.extend(got)

en = [f'{F}/{x}' for x in ('fortunes', 'literature', 'computers', 'science', 'wisdom', 'people',
                             'linux', 'humorists', 'law', 'politics', 'startrek', 'zippy')]
sample('en fortunes', en, 6000)
for lang, n in (('de', 3000), ('it', 2000), ('es', 2000), ('ru', 3000), ('cs', 2000), ('pl', 2000), ('sk', 500)):
    sample(f'{lang} fortunes', glob.glob(f'{F}/{lang}/*'), n)
sample('pt fortunes (brasil)', [f'{F}/brasil'], 1500)
sample('zh fortunes', [f'{F}/chinese', f'{F}/tang300'], 3000)
for loc in ('ja', 'ko', 'zh_CN', 'zh_TW', 'ru', 'de', 'fr', 'pl', 'tr', 'uk', 'cs', 'es', 'pt_BR', 'sv', 'it'):
    sample(f'man {loc}', sorted(glob.glob(f'/usr/share/man/{loc}/man1/*.gz'))[:40], 500)
lic = '/usr/share/common-licenses'
sample('licences', [f'{lic}/GPL-3', f'{lic}/Apache-2.0', f'{lic}/MPL-2.0', f'{lic}/Artistic'], 1500)
sample('emoji-test.txt', ['/usr/share/unicode/emoji/emoji-test.txt'], 6000)
# A few real lines that are not UTF-8 (legacy encodings in the fortune files).
bad = list(lines_of(glob.glob(f'{F}/*/*'), encoding_ok=False))
step = max(1, len(bad) // 100)
out.extend(bad[::step][:100])
print(f'invalid UTF-8: {min(100, len(bad[::step]))} lines', file=sys.stderr)

# The hostile file.
h = []
h.append('\ufeffBOM at the start of a line')
h.append('mid\ufeffword BOM and a\u200bzero\u200bwidth space')
h.append('NUL\x00inside and \x01\x02\x03\x07\x08 control \x0b\x0c\x1b[31mred\x1b[0m text')
h.append('carriage\rreturn\r and a line ending in CR\r')
h.append('tab\tseparated\tvalues\t\t end')
h.append('zero width joiner: \U0001F468\u200D\U0001F469\u200D\U0001F467 family; ZWNJ: \u200c')
h.append('bidi \u202eoverride\u202c and \u202aembedding\u202c and \u2066isolate\u2069 marks \u200e\u200f')
h.append('\u0301lone combining acute at the start, and after space \u0308 umlaut')
h.append('a\u0300\u0301\u0302\u0303\u0304\u0305 stacked marks e\u0301\u0301')
h.append('non\u00a0breaking\u00a0space, ideographic\u3000space, en\u2002space, thin\u2009space, nnbsp\u202f, nel\u0085here')
h.append('İstanbul İİİ ẞtraße STRASSE ǅ ǈ ǋ ΣΊΣΥΦΟΣ ﬁ ﬂ Ω K Å')
h.append('DİYARBAKIR İzmir ıi Iı')
h.append('中文测试，没有空格。漢字とひらがなとカタカナ。한국어 텍스트')
h.append('\x1b[1;32m绿色\x1b[0m 中\x1b[31m文\x1b[0m mixed CJK with terminal colour codes')
h.append('𠀀𠀁𪜀𫝀𫠠𬺰 CJK extension B–F ideographs 丽丸乁 compatibility 豈更車')
h.append('a' * 100 + ' exactly 100 chars')
h.append('b' * 101 + ' 101 chars')
h.append('Pneumonoultramicroscopicsilicovolcanoconiosis' * 3 + ' long real-ish word')
h.append('é' * 100 + ' 100 accented (200 bytes)')
h.append('é' * 101 + ' 101 accented')
h.append('x' * 20000)
h.append('ab' * 10000)
h.append('!' * 20000)
h.append(' VIII 2000 !!! ???? ---- .... 1999999 0000000')
h.append('[CLS] literal [SEP] specials [PAD][UNK][MASK] [cls] [Cls] [CLS][SEP]')
h.append('<|endoftext|> and text<|endoftext|>text <|endoftext|><|endoftext|> <|endoftext <endoftext|>')
h.append("contractions: it's they're we've I'm you'll he'd don't IT'S 'S ''s")
h.append('numbers: ١٢٣ ٤٥٦ ①②③ Ⅷ ½ ¾ ²³ 𝟘𝟙𝟚')
h.append('symbols: € © ® ™ ° ± × ÷ § ¶ • … ‰ ′ ″ ‹ › « » „ “ ” ‘ ’ — – ¿ ¡ ※')
h.append('math: 𝔸𝔹ℂ 𝐀𝐁𝐂 ∀x∈ℝ: x²≥0 ∑ ∫ √')
h.append('private use \ue000\uf8ff and noncharacters \ufdd0 \ufffe and replacement \ufffd char')
h.append('unassigned \u0378\u0379 \U000E0001 tag \U000E0041\U000E007F and variation \ufe0f\ufe0e selectors')
h.append('emoji: 👍🏽 🏳️\u200d🌈 🇩🇪🇫🇷 🫠 🥹 🧑\u200d💻 ❤️\u200d🔥 🪿 🫎')
h.append('Devanagari: हिन्दी नमस्ते, Thai: ภาษาไทย, Arabic: العربية, Hebrew: עִבְרִית')
h.append('Hangul Jamo: 각 가각 ㄱㅏ Hangul syllables decomposed by NFD')
h.append('Greek: Ἀθῆναι ὁ ἄνθρωπος ᾖ ᾯ, Vietnamese: Tiếng Việt có dấu')
h.append('   leading and trailing spaces   ')
h.append(' ')
h.append('\t')
h.append('\u3000')
h.append('\x00')
h.append('\ufeff')
h.append('a')
h.append('.')
h.append('   multiple     spaces\t\t\ttabs  \u00a0\u00a0 nbsp')
h.append('URL https://example.com/path?q=1&r=2#frag and e-mail user@example.org')
h.append('code: if (a != b) { return x->y[0] + *p; } // comment /* block */ $var @decorator #tag ~tilde ^caret `tick` |pipe|')
h.append('##ing ## #hash ###')
h.append('Mixed 𝓼𝓬𝓻𝓲𝓹𝓽 ＦＵＬＬＷＩＤＴＨ ｶﾀｶﾅ halfwidth')
h.append('soft\u00adhyphen and word\u2060joiner and\u180emongolian vowel separator')
h.append('line\u2028separator and paragraph\u2029separator and \u1680ogham')
h.append('surrogate-like text: \\ud800 and escaped \\x00')
h.append(('word ' * 13000).strip())  # about 64 KB
h.append(('Ünïcödé wörds ' * 4700).strip())  # about 64 KB, non-ASCII
h.append('' + 'ﷺ ﷻ ﷽ ligatures expand under NFKD but not NFD')
h.append('\U0001D165\U0001D16D\U0001D165 musical combining marks (Mc with non-zero class)')
h.append('a\u0345b \u0344 \u0340\u0341 \u0f73 \u0f75 \u0f81 characters with multi-code-point NFD')
hb = [s.encode('utf-8') for s in h]
# Invalid UTF-8 in the hostile file too.
hb += [b'truncated \xe2\x82 euro and lone \x80 continuation', b'overlong \xc0\xaf and \xed\xa0\x80 surrogate and \xf4\x90\x80\x80 too big',
       b'latin-1 caf\xe9 na\xefve', b'\xff\xfe\xfd', b'\xf0\x9f\x98 cut emoji', b'end with a lead byte \xe4']
out.extend(hb)
for l in out:
    assert b'\n' not in l
with gzip.GzipFile('corpus.txt.gz', 'wb', mtime=0) as g:
    g.write(b'\n'.join(out) + b'\n')
print(f'corpus: {len(out)} documents, {sum(len(l) + 1 for l in out)} bytes', file=sys.stderr)
PY
