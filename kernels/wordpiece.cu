// wordpiece: BERT WordPiece tokenisation of a batch of documents in two
// launches (see wordpiece.h for the layouts, the thread mapping and the
// semantics): wp_tokenize (one thread per text span: normalise, split into
// words, greedy longest-match WordPiece against the vocabulary hash table)
// then wp_assemble (one thread per output element: [CLS]/[SEP], truncation,
// padding; int32 ids and row lengths, from which the host writes the
// attention mask and the type ids).
//
// The bodies live in wordpiece.h so that the CPU emulation
// (kernels/wordpiece_emulate.go) runs the same code.
#include "wordpiece.h"

extern "C" __global__ void __launch_bounds__(WP_TOKENIZE_BLOCK)
wp_tokenize(const unsigned char *tables, const unsigned char *batch, long long spans_off, int nspans, int cap,
	    int *ids, int *counts)
{
	wp_tokenize_thread(tables, batch, spans_off, nspans, cap, ids, counts, blockIdx.x, threadIdx.x);
}

extern "C" __global__ void __launch_bounds__(WP_ASSEMBLE_BLOCK)
wp_assemble(const unsigned char *tables, const unsigned char *batch, long long rows_off, long long pieces_off,
	    int nrows, int width, int room, const int *ids, const int *counts, int cap, int *out, int *lengths)
{
	wp_assemble_thread(tables, batch, rows_off, pieces_off, nrows, width, room, ids, counts, cap, out, lengths,
			   blockIdx.x, threadIdx.x);
}
