package publish

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
)

// TFRecord framing (https://www.tensorflow.org/tutorials/load_data/tfrecord):
//
//	uint64 length (little endian)
//	uint32 masked CRC32C of the 8 length bytes
//	byte   data[length]
//	uint32 masked CRC32C of data
//
// with mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8.

const (
	tfrHeaderLen = 12
	tfrMaskDelta = 0xa282ead8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC32C is the checksum TFRecord files store: the CRC32C of b,
// rotated right by 15 bits plus 0xa282ead8.
func MaskedCRC32C(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + tfrMaskDelta
}

// TFRecordWriter writes records in the TFRecord framing.
type TFRecordWriter struct {
	w   io.Writer
	hdr [tfrHeaderLen]byte
}

// NewTFRecordWriter writes TFRecord framing to w.
func NewTFRecordWriter(w io.Writer) *TFRecordWriter { return &TFRecordWriter{w: w} }

// Write writes one record.
func (t *TFRecordWriter) Write(data []byte) error {
	binary.LittleEndian.PutUint64(t.hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(t.hdr[8:], MaskedCRC32C(t.hdr[:8]))
	var foot [4]byte
	binary.LittleEndian.PutUint32(foot[:], MaskedCRC32C(data))
	for _, b := range [][]byte{t.hdr[:], data, foot[:]} {
		if _, err := t.w.Write(b); err != nil {
			return fmt.Errorf("tfrecord: write: %w", err)
		}
	}
	return nil
}

// TFRecordFramer reads the raw records of a TFRecord stream, checking both
// checksums. A record whose data checksum fails is reported as [ErrCorrupt]
// with its offset and skipped. A header whose length checksum fails cannot
// be trusted, so the framer scans forward byte by byte to the next header
// whose checksum holds and reports the bytes it skipped as one [ErrCorrupt].
type TFRecordFramer struct {
	br     *bufio.Reader
	src    *byteSource // instead of br when the input is in memory: no copies
	name   string
	max    uint64
	offset int64 // of the next unread byte
	index  int   // of the next record
}

// NewTFRecordFramer reads records from r; name is used in errors. Records
// longer than maxRecord bytes (default 64 MiB when 0) are skipped as
// [ErrTooLarge].
func NewTFRecordFramer(r io.Reader, name string, maxRecord int64) *TFRecordFramer {
	if maxRecord <= 0 {
		maxRecord = 64 << 20
	}
	if src, ok := r.(*byteSource); ok {
		return &TFRecordFramer{src: src, name: name, max: uint64(maxRecord), offset: src.off}
	}
	return &TFRecordFramer{br: bufio.NewReaderSize(r, 32<<10), name: name, max: uint64(maxRecord)}
}

// peek returns the next n bytes without consuming them (fewer at the end,
// with an error).
func (f *TFRecordFramer) peek(n int) ([]byte, error) {
	if f.src == nil {
		return f.br.Peek(n)
	}
	rest := f.src.b[min(f.src.off, int64(len(f.src.b))):]
	if len(rest) < n {
		return rest, io.EOF
	}
	return rest[:n], nil
}

// readData reads a record's n data bytes (aliasing the input when it is in
// memory) and its footer.
func (f *TFRecordFramer) readData(n uint64) (data []byte, rel *releaser, foot uint32, err error) {
	if f.src != nil {
		avail := uint64(len(f.src.b)) - uint64(f.src.off)
		if n+4 > avail {
			f.discard(int(avail))
			return nil, nil, 0, io.ErrUnexpectedEOF
		}
		data, rel, _ = f.src.slice(f.src.off, int64(n))
		foot = binary.LittleEndian.Uint32(f.src.b[f.src.off+int64(n):])
		f.discard(int(n + 4))
		return data, rel, foot, nil
	}
	data = make([]byte, n)
	got, err := io.ReadFull(f.br, data)
	f.offset += int64(got)
	if err != nil {
		return nil, nil, 0, err
	}
	var b [4]byte
	got, err = io.ReadFull(f.br, b[:])
	f.offset += int64(got)
	if err != nil {
		return nil, nil, 0, err
	}
	return data, nil, binary.LittleEndian.Uint32(b[:]), nil
}

// validHeader reports whether the next 12 bytes are a header whose length
// checksum holds, and its length.
func validHeader(h []byte) (uint64, bool) {
	n := binary.LittleEndian.Uint64(h[:8])
	return n, binary.LittleEndian.Uint32(h[8:12]) == MaskedCRC32C(h[:8])
}

// Next returns the next record's data, its index (records counted from 0 as
// they are framed) and its byte offset; io.EOF after the last.
func (f *TFRecordFramer) Next() (data []byte, index int, offset int64, err error) {
	data, _, index, offset, err = f.next()
	return data, index, offset, err
}

func (f *TFRecordFramer) next() (data []byte, rel *releaser, index int, offset int64, err error) {
	h, err := f.peek(tfrHeaderLen)
	if len(h) == 0 && errors.Is(err, io.EOF) {
		return nil, nil, 0, 0, io.EOF
	}
	start := f.offset
	if len(h) < tfrHeaderLen {
		if !errors.Is(err, io.EOF) {
			return nil, nil, 0, start, fmt.Errorf("tfrecord %s: offset %d: %w", f.name, start, err)
		}
		f.discard(len(h))
		return nil, nil, 0, start, fmt.Errorf("tfrecord %s: offset %d: %w: truncated header (%d of %d bytes)", f.name, start, ErrCorrupt, len(h), tfrHeaderLen)
	}
	n, ok := validHeader(h)
	if !ok {
		return nil, nil, 0, start, f.resync(start)
	}
	f.discard(tfrHeaderLen)
	index = f.index
	f.index++
	if n > f.max {
		if err := f.discard64(n + 4); err != nil {
			return nil, nil, index, start, fmt.Errorf("tfrecord %s: record %d at offset %d: %w: %d bytes, truncated: %v", f.name, index, start, ErrCorrupt, n, err)
		}
		return nil, nil, index, start, fmt.Errorf("tfrecord %s: record %d at offset %d: %w: %d bytes, over the %d limit", f.name, index, start, ErrTooLarge, n, f.max)
	}
	data, rel, foot, err := f.readData(n)
	if err != nil {
		return nil, nil, index, start, f.truncated(index, start, err)
	}
	if foot != MaskedCRC32C(data) {
		if rel != nil {
			(Record{rel: rel}).Release()
		}
		return nil, nil, index, start, fmt.Errorf("tfrecord %s: record %d at offset %d: %w: data checksum mismatch", f.name, index, start, ErrCorrupt)
	}
	return data, rel, index, start, nil
}

func (f *TFRecordFramer) truncated(index int, start int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("tfrecord %s: record %d at offset %d: %w: truncated at offset %d", f.name, index, start, ErrCorrupt, f.offset)
	}
	return fmt.Errorf("tfrecord %s: record %d at offset %d: %w", f.name, index, start, err)
}

// resync skips bytes until a header whose checksum holds, or the end.
func (f *TFRecordFramer) resync(start int64) error {
	for {
		f.discard(1)
		h, err := f.peek(tfrHeaderLen)
		if len(h) < tfrHeaderLen {
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("tfrecord %s: offset %d: %w", f.name, f.offset, err)
			}
			f.discard(len(h))
			break
		}
		if _, ok := validHeader(h); ok {
			break
		}
	}
	return fmt.Errorf("tfrecord %s: offset %d: %w: length checksum mismatch; skipped %d bytes to offset %d", f.name, start, ErrCorrupt, f.offset-start, f.offset)
}

func (f *TFRecordFramer) discard(n int) {
	if f.src != nil {
		d := min(int64(n), int64(len(f.src.b))-f.src.off)
		f.src.Seek(d, io.SeekCurrent)
		f.offset += d
		return
	}
	d, _ := f.br.Discard(n)
	f.offset += int64(d)
}

func (f *TFRecordFramer) discard64(n uint64) error {
	if f.src != nil {
		if avail := uint64(len(f.src.b)) - uint64(f.src.off); n > avail {
			f.discard(int(avail))
			return io.ErrUnexpectedEOF
		}
		f.discard(int(n))
		return nil
	}
	for n > 0 {
		step := min(n, 1<<30)
		d, err := f.br.Discard(int(step))
		f.offset += int64(d)
		n -= uint64(d)
		if err != nil {
			return err
		}
	}
	return nil
}

// TFRecordOptions says which features of each tf.train.Example to publish.
type TFRecordOptions struct {
	// Feature names the bytes feature that is the payload (its first
	// value); required.
	Feature string
	// IDFeature, when set, names a bytes or int64 feature used as the
	// record id instead of "<name>:<record index>".
	IDFeature string
	// MetaFeatures are features carried as metadata: single bytes values
	// as text, int64 and float lists as comma-separated numbers.
	MetaFeatures []string
	// MaxRecordBytes bounds one record; default 64 MiB.
	MaxRecordBytes int64
}

// TFRecordReader yields one record per tf.train.Example of a TFRecord
// stream.
type TFRecordReader struct {
	fr   *TFRecordFramer
	name string
	o    TFRecordOptions
	want []string // features to look up: payload, id, meta
}

// NewTFRecordReader reads tf.train.Example records from r.
func NewTFRecordReader(r io.Reader, name string, o TFRecordOptions) (*TFRecordReader, error) {
	if o.Feature == "" {
		return nil, errors.New("tfrecord: no payload feature given")
	}
	want := append([]string{o.Feature}, o.MetaFeatures...)
	if o.IDFeature != "" {
		want = append(want, o.IDFeature)
	}
	return &TFRecordReader{fr: NewTFRecordFramer(r, name, o.MaxRecordBytes), name: name, o: o, want: want}, nil
}

// Next returns the payload feature of the next Example.
func (t *TFRecordReader) Next() (Record, error) {
	data, rel, index, offset, err := t.fr.next()
	if err != nil {
		return Record{}, err
	}
	keep := false
	defer func() {
		if !keep && rel != nil {
			(Record{rel: rel}).Release()
		}
	}()
	where := func() string {
		return fmt.Sprintf("tfrecord %s: record %d at offset %d", t.name, index, offset)
	}
	feats, err := ParseExample(data, t.want)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w: %v", where(), ErrCorrupt, err)
	}
	payload, ok := feats[t.o.Feature]
	if !ok || len(payload.Bytes) == 0 {
		return Record{}, fmt.Errorf("%s: %w: no bytes feature %q", where(), ErrNoPayload, t.o.Feature)
	}
	rec := Record{ID: t.name + ":" + strconv.Itoa(index), Data: payload.Bytes[0], rel: rel}
	if t.o.IDFeature != "" {
		id, ok := feats[t.o.IDFeature].scalar()
		if !ok || id == "" {
			return Record{}, fmt.Errorf("%s: %w: id feature %q is missing or not a single value", where(), ErrCorrupt, t.o.IDFeature)
		}
		rec.ID = id
	}
	for _, name := range t.o.MetaFeatures {
		if v, ok := feats[name].scalar(); ok {
			if rec.Meta == nil {
				rec.Meta = make(map[string]string, len(t.o.MetaFeatures))
			}
			rec.Meta[name] = v
		}
	}
	keep = true
	return rec, nil
}
