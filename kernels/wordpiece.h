/*
 * wordpiece.h: the per-thread bodies of the two WordPiece kernels
 * (wordpiece.cu): BERT normalisation, pre-tokenisation and greedy
 * longest-match WordPiece of text spans, then the assembly of the padded
 * input_ids rows (int32) and their lengths; the host writes attention_mask
 * and token_type_ids from the lengths (kernels.TextJob.finish).
 *
 * Like resize_crop_normalize.h this header compiles two ways: as CUDA
 * (__device__ functions wrapped by __global__ kernels in wordpiece.cu) and
 * as C11 (static inline, called by the emulator in wordpiece_emulate.go
 * for every (block, thread) index of each launch grid, one after another).
 * No thread reads what another thread of the same launch writes, and the
 * second launch only reads what the first one wrote, so the serial walk
 * gives what the GPU gives.
 *
 * Semantics are those of preprocess/text/wordpiece (Encoder.Encode, which
 * is Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece), read
 * from the same tables:
 *
 *   tables  one blob uploaded once per tokenizer: a wp_tables header
 *           followed by the code-point table (page index, pages,
 *           expansions) and the vocabulary hash table (slots, key offsets,
 *           key bytes, ids), at the byte offsets the header names.
 *   batch   one blob per batch: the UTF-8 text of every span back to back,
 *           then the span table (wp_span), the row table (wp_row) and the
 *           row pieces (int32: >= 0 a span index, < 0 an added token whose
 *           id is -(piece+1)).
 *
 * Kernel 1, wp_tokenize: thread i tokenises span i (one document, or the
 * part of one between two added tokens) and writes its first `cap` ids to
 * ids[i*cap ...] and its id count to counts[i]. Like Encoder.Encode with
 * limit = cap it stops at the first word boundary at which it has at least
 * cap ids, so counts[i] >= cap means "cap or more".
 *
 * Kernel 2, wp_assemble: thread (row r, position j) of a rows x width grid
 * writes element j of row r of the input ids (int32, the pad id past the
 * row's end) and, for j == 0, the row's length (special tokens included,
 * after truncation to `room` content ids, before padding) in lengths[r].
 * Nothing else: the host writes the attention mask and the type ids from
 * the lengths and widens the ids to int64 when asked.
 */
#ifndef STOKER_WORDPIECE_H
#define STOKER_WORDPIECE_H

#ifdef __CUDACC__
#define WP_FN __device__ __forceinline__
#else
#define WP_FN static inline
#endif

#define WP_TOKENIZE_BLOCK 64  /* threads per block of wp_tokenize */
#define WP_ASSEMBLE_BLOCK 256 /* threads per block of wp_assemble */
#define WP_MAX_CHARS 256      /* largest max_input_chars_per_word supported */
#define WP_WORD_BYTES (4 * WP_MAX_CHARS)
#define WP_MAX_KEY 128    /* longest vocabulary key in bytes supported */
#define WP_MAX_SPECIAL 8  /* special tokens before (and after) the sequence */

/* Entry fields of the code-point table (wordpiece.Tables). */
#define WP_ACTION_MAP 0
#define WP_ACTION_DROP 1
#define WP_ACTION_SPACE 2
#define WP_ACTION_ISOLATE 3
#define WP_CLASS_OTHER 0
#define WP_CLASS_WHITESPACE 1
#define WP_CLASS_PUNCT 2
#define WP_ENTRY_SAME 0x80u
#define WP_PAGE_BITS 8

#define WP_FNV_PRIME 16777619u
#define WP_FNV_INIT 2166136261u

/*
 * The header of the tables blob, 224 bytes, written by
 * kernels.WordPieceTables.pack in Go (same field order).
 */
typedef struct {
	int page_index;  /* byte offset of the uint16 page index */
	int pages;       /* byte offset of the uint32 pages */
	int expansions;  /* byte offset of the int32 expansions */
	int slots;       /* byte offset of the uint32 hash slots */
	int key_offsets; /* byte offset of the uint32 key offsets (entries+1) */
	int key_bytes;   /* byte offset of the key bytes */
	int entry_ids;   /* byte offset of the int32 ids */
	int prefix;      /* byte offset of the continuing prefix's bytes */
	unsigned int slot_mask;
	unsigned int prefix_hash; /* FNV-1a state after the prefix */
	int prefix_len;
	int max_key_len;
	int max_chars; /* max_input_chars_per_word */
	int unk_id;
	int pad_id;
	int pad_type;
	int n_prefix; /* special tokens before the sequence */
	int n_suffix; /* special tokens after it */
	int seq_type; /* type id of the sequence's tokens */
	int reserved[5];
	int prefix_ids[WP_MAX_SPECIAL];
	int prefix_types[WP_MAX_SPECIAL];
	int suffix_ids[WP_MAX_SPECIAL];
	int suffix_types[WP_MAX_SPECIAL];
} wp_tables;

/* One span of text, 16 bytes, mirrored by kernels.TextJob.pack. */
typedef struct {
	long long start; /* byte offset of the span in the batch blob */
	int len;         /* bytes, valid UTF-8 */
	int reserved;
} wp_span;

/* One output row, 8 bytes: its pieces are pieces[first .. first+count). */
typedef struct {
	int first;
	int count;
} wp_row;

/* The tokeniser state of one span. */
typedef struct {
	const wp_tables *t;
	const unsigned char *blob;
	const unsigned short *page_index;
	const unsigned int *pages;
	const int *expansions;
	const unsigned int *slots;
	const unsigned int *key_offsets;
	const unsigned char *key_bytes;
	const int *entry_ids;
	const unsigned char *prefix;
	int *out; /* cap ids */
	int cap;
	int count; /* ids produced so far (may exceed cap; only cap are stored) */
	int wlen;  /* bytes of the current word (only WP_WORD_BYTES are stored) */
	int nchars; /* code points in the current word */
	unsigned char word[WP_WORD_BYTES];
	unsigned int hashes[WP_MAX_KEY + 1];
} wp_state;

WP_FN unsigned int wp_entry(const wp_state *s, int r)
{
	return s->pages[((int)s->page_index[r >> WP_PAGE_BITS] << WP_PAGE_BITS) | (r & ((1 << WP_PAGE_BITS) - 1))];
}

WP_FN int wp_entry_class(unsigned int e) { return (int)((e >> 2) & 3u); }
WP_FN int wp_entry_len(unsigned int e) { return (int)((e >> 4) & 7u); }
WP_FN int wp_entry_data(unsigned int e) { return (int)(e >> 8); }

WP_FN void wp_emit(wp_state *s, int id)
{
	if (s->count < s->cap) {
		s->out[s->count] = id;
	}
	s->count++;
}

/* True when b starts a UTF-8 sequence (is not a continuation byte). */
WP_FN int wp_rune_start(unsigned char b) { return (b & 0xC0) != 0x80; }

/*
 * The id of w[0:n] (with the continuing prefix in front when cont), whose
 * FNV-1a hash is h, or -1 when it is not in the vocabulary: linear probing
 * from slot h & mask until the key or an empty slot.
 */
WP_FN int wp_lookup(const wp_state *s, int cont, const unsigned char *w, int n, unsigned int h)
{
	const wp_tables *t = s->t;
	const int plen = cont ? t->prefix_len : 0;
	const int want = n + plen;
	for (unsigned int slot = h & t->slot_mask;; slot = (slot + 1u) & t->slot_mask) {
		const unsigned int v = s->slots[slot];
		if (v == 0u) {
			return -1;
		}
		const unsigned int e = v - 1u;
		const unsigned int ko = s->key_offsets[e];
		if ((int)(s->key_offsets[e + 1u] - ko) != want) {
			continue;
		}
		const unsigned char *key = s->key_bytes + ko;
		int same = 1;
		for (int k = 0; k < plen && same; k++) {
			same = key[k] == s->prefix[k];
		}
		for (int k = 0; k < n && same; k++) {
			same = key[plen + k] == w[k];
		}
		if (same) {
			return s->entry_ids[e];
		}
	}
}

/* WordPiece of the current word: greedy longest match, [UNK] on failure. */
WP_FN void wp_word_piece(wp_state *s)
{
	const wp_tables *t = s->t;
	if (s->nchars > t->max_chars) {
		wp_emit(s, t->unk_id);
		return;
	}
	const unsigned char *w = s->word;
	const int len = s->wlen;
	const int mark = s->count;
	for (int start = 0; start < len;) {
		const int cont = start > 0;
		unsigned int h = cont ? t->prefix_hash : WP_FNV_INIT;
		int end = start + t->max_key_len < len ? start + t->max_key_len : len;
		s->hashes[0] = h;
		for (int k = start; k < end; k++) {
			h ^= (unsigned int)w[k];
			h *= WP_FNV_PRIME;
			s->hashes[k - start + 1] = h;
		}
		while (end < len && end > start && !wp_rune_start(w[end])) {
			end--;
		}
		int id = -1;
		while (end > start) {
			id = wp_lookup(s, cont, w + start, end - start, s->hashes[end - start]);
			if (id >= 0) {
				break;
			}
			end--;
			while (end > start && !wp_rune_start(w[end])) {
				end--;
			}
		}
		if (id < 0) {
			s->count = mark;
			wp_emit(s, t->unk_id);
			return;
		}
		wp_emit(s, id);
		start = end;
	}
}

WP_FN void wp_flush(wp_state *s)
{
	if (s->wlen == 0) {
		return;
	}
	wp_word_piece(s);
	s->wlen = 0;
	s->nchars = 0;
}

/* Appends code point r to the current word as UTF-8. */
WP_FN void wp_append(wp_state *s, int r)
{
	unsigned char b[4];
	int n;
	if (r < 0x80) {
		b[0] = (unsigned char)r;
		n = 1;
	} else if (r < 0x800) {
		b[0] = (unsigned char)(0xC0 | (r >> 6));
		b[1] = (unsigned char)(0x80 | (r & 0x3F));
		n = 2;
	} else if (r < 0x10000) {
		b[0] = (unsigned char)(0xE0 | (r >> 12));
		b[1] = (unsigned char)(0x80 | ((r >> 6) & 0x3F));
		b[2] = (unsigned char)(0x80 | (r & 0x3F));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xF0 | (r >> 18));
		b[1] = (unsigned char)(0x80 | ((r >> 12) & 0x3F));
		b[2] = (unsigned char)(0x80 | ((r >> 6) & 0x3F));
		b[3] = (unsigned char)(0x80 | (r & 0x3F));
		n = 4;
	}
	/* A word that outgrows the buffer has more than WP_MAX_CHARS >=
	 * max_chars code points: it becomes [UNK] without its bytes. */
	for (int k = 0; k < n; k++) {
		if (s->wlen < WP_WORD_BYTES) {
			s->word[s->wlen] = b[k];
		}
		s->wlen++;
	}
}

/* Feeds one normalised code point of class cls to the pre-tokeniser. */
WP_FN void wp_add_rune(wp_state *s, int r, int cls)
{
	if (cls == WP_CLASS_WHITESPACE) {
		wp_flush(s);
		return;
	}
	if (cls == WP_CLASS_PUNCT) {
		wp_flush(s);
		wp_append(s, r);
		s->nchars = 1;
		wp_flush(s);
		return;
	}
	wp_append(s, r);
	s->nchars++;
}

/* Feeds the mapping of r (entry e) to the pre-tokeniser. */
WP_FN void wp_add_mapped(wp_state *s, int r, unsigned int e)
{
	const int n = wp_entry_len(e);
	if (e & WP_ENTRY_SAME) {
		wp_add_rune(s, r, wp_entry_class(e));
	} else if (n == 1) {
		const int m = wp_entry_data(e);
		wp_add_rune(s, m, wp_entry_class(wp_entry(s, m)));
	} else if (n >= 2) {
		const int *x = s->expansions + wp_entry_data(e);
		for (int k = 0; k < n; k++) {
			wp_add_rune(s, x[k], wp_entry_class(wp_entry(s, x[k])));
		}
	}
}

/* Decodes the code point at p (valid UTF-8) and returns its length. */
WP_FN int wp_decode(const unsigned char *p, int *r)
{
	const unsigned char c = p[0];
	if (c < 0x80) {
		*r = c;
		return 1;
	}
	if (c < 0xE0) {
		*r = ((c & 0x1F) << 6) | (p[1] & 0x3F);
		return 2;
	}
	if (c < 0xF0) {
		*r = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
		return 3;
	}
	*r = ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
	return 4;
}

WP_FN void wp_init_state(wp_state *s, const unsigned char *tables, int *out, int cap)
{
	const wp_tables *t = (const wp_tables *)tables;
	s->t = t;
	s->blob = tables;
	s->page_index = (const unsigned short *)(tables + t->page_index);
	s->pages = (const unsigned int *)(tables + t->pages);
	s->expansions = (const int *)(tables + t->expansions);
	s->slots = (const unsigned int *)(tables + t->slots);
	s->key_offsets = (const unsigned int *)(tables + t->key_offsets);
	s->key_bytes = tables + t->key_bytes;
	s->entry_ids = (const int *)(tables + t->entry_ids);
	s->prefix = tables + t->prefix;
	s->out = out;
	s->cap = cap;
	s->count = 0;
	s->wlen = 0;
	s->nchars = 0;
}

/*
 * The body of one wp_tokenize thread: span i = bx*WP_TOKENIZE_BLOCK + tx.
 * ids has nspans*cap elements, counts nspans.
 */
WP_FN void wp_tokenize_thread(const unsigned char *tables, const unsigned char *batch, long long spans_off,
			      int nspans, int cap, int *ids, int *counts, unsigned int bx, unsigned int tx)
{
	const int i = (int)(bx * WP_TOKENIZE_BLOCK + tx);
	if (i >= nspans) {
		return;
	}
	const wp_span sp = ((const wp_span *)(batch + spans_off))[i];
	wp_state st;
	wp_state *s = &st;
	wp_init_state(s, tables, ids + (long long)i * cap, cap);
	const unsigned char *p = batch + sp.start;
	for (int at = 0; at < sp.len;) {
		int r;
		at += wp_decode(p + at, &r);
		const unsigned int e = wp_entry(s, r);
		const int action = (int)(e & 3u);
		if (action == WP_ACTION_DROP) {
			continue;
		}
		if (action == WP_ACTION_SPACE) {
			wp_flush(s);
		} else if (action == WP_ACTION_ISOLATE) {
			wp_flush(s);
			wp_add_mapped(s, r, e);
			wp_flush(s);
		} else if (e & WP_ENTRY_SAME) {
			wp_add_rune(s, r, wp_entry_class(e));
		} else {
			wp_add_mapped(s, r, e);
		}
		if (s->count >= cap && s->nchars == 0) {
			counts[i] = s->count;
			return;
		}
	}
	wp_flush(s);
	counts[i] = s->count;
}

/*
 * The body of one wp_assemble thread: element k = bx*WP_ASSEMBLE_BLOCK + tx
 * of the rows x width output, row k / width, position k % width. It writes
 * the token id (int32; the pad id past the row's end) to out[k] and, at
 * position 0, the row's length (special tokens included) to lengths[r].
 * The attention mask and the type ids follow from the length and the
 * tables, so the host writes them (TextJob.finish) and only the ids cross
 * the bus. Rows whose content exceeds room ids are cut to room (the caller
 * rejects them when truncation is off).
 */
WP_FN void wp_assemble_thread(const unsigned char *tables, const unsigned char *batch, long long rows_off,
			      long long pieces_off, int nrows, int width, int room, const int *ids,
			      const int *counts, int cap, int *out, int *lengths, unsigned int bx, unsigned int tx)
{
	const long long k = (long long)bx * WP_ASSEMBLE_BLOCK + tx;
	if (k >= (long long)nrows * width) {
		return;
	}
	const wp_tables *t = (const wp_tables *)tables;
	const int r = (int)(k / width);
	const int j = (int)(k % width);
	const wp_row row = ((const wp_row *)(batch + rows_off))[r];
	const int *pieces = (const int *)(batch + pieces_off) + row.first;
	/* Content ids of the row: the pieces' ids back to back, cut to room. */
	long long total = 0;
	for (int q = 0; q < row.count && total < room; q++) {
		total += pieces[q] >= 0 ? counts[pieces[q]] : 1;
	}
	const int n = (int)(total < room ? total : room);
	const int len = t->n_prefix + n + t->n_suffix;
	int id = t->pad_id;
	if (j < t->n_prefix) {
		id = t->prefix_ids[j];
	} else if (j >= len) {
		/* padding */
	} else if (j >= len - t->n_suffix) {
		id = t->suffix_ids[j - (len - t->n_suffix)];
	} else {
		const int c = j - t->n_prefix;
		int acc = 0;
		for (int q = 0; q < row.count; q++) {
			const int pc = pieces[q];
			const int m = pc >= 0 ? counts[pc] : 1;
			if (c < acc + m) {
				id = pc >= 0 ? ids[(long long)pc * cap + (c - acc)] : -(pc + 1);
				break;
			}
			acc += m;
		}
	}
	out[k] = id;
	if (j == 0) {
		lengths[r] = len;
	}
}

#endif /* STOKER_WORDPIECE_H */
