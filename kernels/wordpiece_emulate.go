//go:build cgo

package kernels

/*
#cgo CFLAGS: -O2 -std=c11 -fno-fast-math -I${SRCDIR}
#include "wordpiece.h"

// wp_emulate walks both launch grids one thread at a time: every
// wp_tokenize thread, then every wp_assemble thread, as the device runs
// the two launches one after the other on one stream.
static void wp_emulate(const unsigned char *tables, const unsigned char *batch, long long spans_off,
		       long long rows_off, long long pieces_off, int nspans, int nrows, int cap, int width, int room,
		       int *ids, int *counts, int *out, int *lengths, unsigned int tokenize_blocks,
		       unsigned int assemble_blocks)
{
	for (unsigned int bx = 0; bx < tokenize_blocks; bx++)
		for (unsigned int tx = 0; tx < WP_TOKENIZE_BLOCK; tx++)
			wp_tokenize_thread(tables, batch, spans_off, nspans, cap, ids, counts, bx, tx);
	for (unsigned int bx = 0; bx < assemble_blocks; bx++)
		for (unsigned int tx = 0; tx < WP_ASSEMBLE_BLOCK; tx++)
			wp_assemble_thread(tables, batch, rows_off, pieces_off, nrows, width, room, ids, counts, cap,
					   out, lengths, bx, tx);
}

static int wp_tables_size(void) { return (int)sizeof(wp_tables); }
static int wp_span_size(void) { return (int)sizeof(wp_span); }
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// packedTables caches the packed blob of each *WordPieceTables given to
// EmulateWordPiece, as a device keeps the uploaded copy.
var packedTables sync.Map // *WordPieceTables → []byte

func emulatedTables(t *WordPieceTables) ([]byte, error) {
	if b, ok := packedTables.Load(t); ok {
		return b.([]byte), nil
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	tb := t.pack()
	b := aligned(len(tb))
	copy(b, tb)
	packedTables.Store(t, b)
	return b, nil
}

// aligned returns n zero bytes backed by int64s, so that the int and
// long long fields the C code reads are aligned.
func aligned(n int) []byte {
	words := make([]int64, (n+7)/8+1)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 8*len(words))[:n]
}

// EmulateWordPiece runs the WordPiece kernels' bodies (wordpiece.h,
// compiled by the host C compiler) on the CPU over both launch grids and
// fills the job's results as WordPiece.Tokenize does on the device: the
// tables and the batch are packed exactly as they are uploaded, and
//
//	for bx in 0..tokenizeBlocks, tx in 0..TokenizeBlock: wp_tokenize_thread(bx, tx)
//	for bx in 0..assembleBlocks, tx in 0..AssembleBlock: wp_assemble_thread(bx, tx)
//
// Each thread writes only its own outputs, and the second launch reads
// only what the first wrote, so the serial walk gives what the GPU gives.
// The per-span ids and the output are poisoned with 0xFF before the
// run. It needs cgo, not CUDA; it is for tests (one core), not for
// preprocessing.
//
// The tables are validated and packed once per *WordPieceTables (they must
// not change afterwards, as on a device).
func EmulateWordPiece(t *WordPieceTables, j *TextJob) error {
	tables, err := emulatedTables(t)
	if err != nil {
		return err
	}
	if err := j.validate(t); err != nil {
		return err
	}
	if n := int(C.wp_tables_size()); n != wpTablesHeaderBytes {
		return fmt.Errorf("kernels: emulate: sizeof(wp_tables) is %d, kernels packs %d", n, wpTablesHeaderBytes)
	}
	if n := int(C.wp_span_size()); n != wpSpanBytes {
		return fmt.Errorf("kernels: emulate: sizeof(wp_span) is %d, kernels packs %d", n, wpSpanBytes)
	}
	if len(j.Docs) == 0 {
		j.finish(t, nil, nil)
		return nil
	}
	p := j.packing()
	batch := aligned(p.Size)
	j.pack(batch, p)
	// The per-span ids and the output start as 0xFF bytes, so an element
	// the kernels do not write shows as -1 (never a valid id or length),
	// not as a plausible 0.
	scratch := aligned(p.scratchBytes())
	out := aligned(j.outputBytes())
	for _, b := range [][]byte{scratch, out} {
		for i := range b {
			b[i] = 0xff
		}
	}
	idsPtr := unsafe.Pointer(unsafe.SliceData(scratch))
	countsPtr := unsafe.Add(idsPtr, 4*p.Spans*p.Cap)
	rows := len(j.Docs)
	outPtr := unsafe.Pointer(unsafe.SliceData(out))
	lengthsPtr := unsafe.Add(outPtr, j.lengthsOffset())
	tok, asm := textGeometry(j, p)
	C.wp_emulate((*C.uchar)(unsafe.Pointer(&tables[0])), (*C.uchar)(unsafe.Pointer(unsafe.SliceData(batch))),
		C.longlong(p.SpansOffset), C.longlong(p.RowsOffset), C.longlong(p.PiecesOffset),
		C.int(p.Spans), C.int(rows), C.int(p.Cap), C.int(j.Width), C.int(j.Room),
		(*C.int)(idsPtr), (*C.int)(countsPtr), (*C.int)(outPtr), (*C.int)(lengthsPtr),
		C.uint(tok), C.uint(asm))
	j.finish(t, out, scratch[4*p.Spans*p.Cap:])
	return nil
}
