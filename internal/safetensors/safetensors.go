package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/stoker-ml/stoker/preprocess"
)

// MetadataKey is the reserved header key holding the string metadata.
const MetadataKey = "__metadata__"

// MaxHeaderBytes bounds the JSON header Decode accepts (100 MB, the limit of
// the reference implementation).
const MaxHeaderBytes = 100_000_000

// ErrInvalid marks every encoding and decoding failure: a tensor that cannot
// be encoded, or bytes that are not a valid safetensors file. Test with
// errors.Is; the message says what was wrong and with which tensor.
var ErrInvalid = errors.New("safetensors")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Encode returns the safetensors file holding tensors, in the layout
// described in the package documentation, with metadata as "__metadata__".
func Encode(tensors []preprocess.Tensor, metadata map[string]string) ([]byte, error) {
	return AppendEncode(make([]byte, 0, EncodedSize(tensors, metadata)), tensors, metadata)
}

// EncodedSize returns the exact length of Encode's result without encoding.
// For input Encode would refuse, the number is meaningless.
func EncodedSize(tensors []preprocess.Tensor, metadata map[string]string) int {
	n := 8 + paddedHeaderLen(tensors, metadata)
	for _, t := range tensors {
		n += len(t.Data)
	}
	return n
}

// AppendEncode appends the safetensors file holding tensors to dst and
// returns the extended slice, growing dst at most once, so a caller can reuse
// one buffer across batches. On error dst is returned unchanged.
func AppendEncode(dst []byte, tensors []preprocess.Tensor, metadata map[string]string) ([]byte, error) {
	if err := checkEncodable(tensors, metadata); err != nil {
		return dst, err
	}
	hlen := paddedHeaderLen(tensors, metadata)
	total := 8 + hlen
	for _, t := range tensors {
		total += len(t.Data)
	}
	out := slices.Grow(dst, total)
	start := len(out)
	out = binary.LittleEndian.AppendUint64(out, uint64(hlen))
	out = appendHeader(out, tensors, metadata)
	for len(out)-start < 8+hlen {
		out = append(out, ' ')
	}
	for _, t := range tensors {
		out = append(out, t.Data...)
	}
	return out, nil
}

// checkEncodable refuses what a reader could not read back.
func checkEncodable(tensors []preprocess.Tensor, metadata map[string]string) error {
	for k, v := range metadata {
		if !utf8.ValidString(k) {
			return invalid("metadata key %q: not valid UTF-8", k)
		}
		if !utf8.ValidString(v) {
			return invalid("metadata %q: value is not valid UTF-8", k)
		}
	}
	seen := make(map[string]struct{}, len(tensors))
	for i, t := range tensors {
		switch {
		case t.Name == "":
			return invalid("tensor %d: empty name", i)
		case t.Name == MetadataKey:
			return invalid("tensor %d: name %q is reserved", i, t.Name)
		case !utf8.ValidString(t.Name):
			return invalid("tensor %q: name is not valid UTF-8", t.Name)
		}
		if _, dup := seen[t.Name]; dup {
			return invalid("tensor %q: name used twice", t.Name)
		}
		seen[t.Name] = struct{}{}
		if t.DType.Size() == 0 {
			return invalid("tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		n, ok := numElements(t.Shape)
		if !ok {
			return invalid("tensor %q: bad shape %v (negative or too large)", t.Name, t.Shape)
		}
		if want := n * uint64(t.DType.Size()); want != uint64(len(t.Data)) {
			return invalid("tensor %q: shape %v of %s needs %d bytes, data has %d", t.Name, t.Shape, t.DType, want, len(t.Data))
		}
	}
	return nil
}

// numElements multiplies the dimensions, refusing negative ones and products
// beyond what a byte slice could hold.
func numElements(shape []int) (uint64, bool) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > math.MaxInt64/8/uint64(d) {
			return 0, false
		}
		n *= uint64(d)
	}
	return n, true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendHeader writes the unpadded JSON header. headerLen must agree with it
// byte for byte.
func appendHeader(b []byte, tensors []preprocess.Tensor, metadata map[string]string) []byte {
	b = append(b, '{')
	first := true
	if len(metadata) > 0 {
		b = append(b, `"__metadata__":{`...)
		for i, k := range sortedKeys(metadata) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, metadata[k])
		}
		b = append(b, '}')
		first = false
	}
	var offset uint64
	for _, t := range tensors {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, t.Name)
		b = append(b, `:{"dtype":"`...)
		b = append(b, t.DType...)
		b = append(b, `","shape":[`...)
		for i, d := range t.Shape {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendUint(b, offset, 10)
		b = append(b, ',')
		offset += uint64(len(t.Data))
		b = strconv.AppendUint(b, offset, 10)
		b = append(b, "]}"...)
	}
	return append(b, '}')
}

// headerLen is len(appendHeader(nil, …)) computed without writing.
func headerLen(tensors []preprocess.Tensor, metadata map[string]string) int {
	n := 2 // { }
	parts := 0
	if len(metadata) > 0 {
		n += len(`"__metadata__":{}`)
		i := 0
		for k, v := range metadata {
			if i > 0 {
				n++
			}
			n += stringLen(k) + 1 + stringLen(v)
			i++
		}
		parts++
	}
	var offset uint64
	for _, t := range tensors {
		if parts > 0 {
			n++
		}
		parts++
		n += stringLen(t.Name) + len(`:{"dtype":"","shape":[],"data_offsets":[,]}`) + len(t.DType)
		for i, d := range t.Shape {
			if i > 0 {
				n++
			}
			n += intLen(int64(d))
		}
		n += uintLen(offset)
		offset += uint64(len(t.Data))
		n += uintLen(offset)
	}
	return n
}

func paddedHeaderLen(tensors []preprocess.Tensor, metadata map[string]string) int {
	n := headerLen(tensors, metadata)
	return (n + 7) &^ 7
}

func uintLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

func intLen(v int64) int {
	if v < 0 {
		return 1 + uintLen(uint64(-v))
	}
	return uintLen(uint64(v))
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string: quote, backslash and control
// characters escaped, everything else (valid UTF-8) as is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func stringLen(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// Decode reads a safetensors file. The tensors come back in the order the
// header lists them; their Data slices alias b (copy them to keep them past
// b's lifetime). metadata is nil when the file has none. Every check the
// format implies is made: header length within bounds, valid JSON without
// duplicate or unknown keys, known dtypes, non-negative shapes, offsets in
// range, tensor sizes equal to shape × dtype size, and tensors covering the
// data section exactly without overlap. Errors wrap ErrInvalid and name the
// tensor concerned.
func Decode(b []byte) (tensors []preprocess.Tensor, metadata map[string]string, err error) {
	if len(b) < 8 {
		return nil, nil, invalid("file is %d bytes, shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeaderBytes {
		return nil, nil, invalid("header length %d exceeds the limit of %d bytes", n, MaxHeaderBytes)
	}
	if n > uint64(len(b)-8) {
		return nil, nil, invalid("header length %d exceeds the %d bytes after the length field", n, len(b)-8)
	}
	header := b[8 : 8+n]
	data := b[8+n:]
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, invalid("header does not start with '{'")
	}
	if !utf8.Valid(header) {
		return nil, nil, invalid("header is not valid UTF-8")
	}
	entries, metadata, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}
	tensors = make([]preprocess.Tensor, len(entries))
	for i, e := range entries {
		if e.end > uint64(len(data)) {
			return nil, nil, invalid("tensor %q: data_offsets [%d, %d] beyond the %d-byte data section", e.name, e.begin, e.end, len(data))
		}
		tensors[i] = preprocess.Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: data[e.begin:e.end:e.end]}
	}
	if err := checkCoverage(entries, uint64(len(data))); err != nil {
		return nil, nil, err
	}
	return tensors, metadata, nil
}

type entry struct {
	name       string
	dtype      preprocess.DType
	shape      []int
	begin, end uint64
}

// checkCoverage requires the tensors, sorted by offset, to tile
// [0, dataLen) with neither overlap nor gap.
func checkCoverage(entries []entry, dataLen uint64) error {
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ea, eb := entries[a], entries[b]
		if ea.begin != eb.begin {
			return cmpU64(ea.begin, eb.begin)
		}
		return cmpU64(ea.end, eb.end)
	})
	var pos uint64
	prev := ""
	for _, i := range order {
		e := entries[i]
		switch {
		case e.begin < pos:
			return invalid("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.name, e.begin, e.end, prev, pos)
		case e.begin > pos:
			return invalid("tensor %q: data_offsets [%d, %d] leave bytes [%d, %d) unused", e.name, e.begin, e.end, pos, e.begin)
		}
		pos = e.end
		prev = e.name
	}
	if pos != dataLen {
		return invalid("tensors cover %d bytes but the data section has %d", pos, dataLen)
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseHeader walks the header's JSON tokens, keeping the order of the
// tensors and refusing duplicate keys.
func parseHeader(header []byte) ([]entry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if err := expectDelim(dec, '{', "header"); err != nil {
		return nil, nil, err
	}
	var (
		entries  []entry
		metadata map[string]string
		seen     = map[string]struct{}{}
	)
	for dec.More() {
		key, err := readKey(dec, "header")
		if err != nil {
			return nil, nil, err
		}
		if _, dup := seen[key]; dup {
			if key == MetadataKey {
				return nil, nil, invalid("header: %q appears twice", key)
			}
			return nil, nil, invalid("tensor %q: appears twice in the header", key)
		}
		seen[key] = struct{}{}
		if key == "" {
			return nil, nil, invalid("header: a tensor has an empty name")
		}
		if key == MetadataKey {
			if metadata, err = parseMetadata(dec); err != nil {
				return nil, nil, err
			}
			continue
		}
		e, err := parseEntry(dec, key)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if err := expectDelim(dec, '}', "header"); err != nil {
		return nil, nil, err
	}
	rest := header[dec.InputOffset():]
	if len(bytes.Trim(rest, " \t\r\n")) != 0 {
		return nil, nil, invalid("header: unexpected bytes after the JSON object")
	}
	return entries, metadata, nil
}

func jsonErr(where string, err error) error {
	if err == io.EOF {
		return invalid("%s: JSON ends early", where)
	}
	return invalid("%s: bad JSON: %v", where, err)
}

func expectDelim(dec *json.Decoder, want json.Delim, where string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(where, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return invalid("%s: want %q, got %v", where, want, describe(tok))
	}
	return nil
}

func readKey(dec *json.Decoder, where string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonErr(where, err)
	}
	k, ok := tok.(string)
	if !ok {
		return "", invalid("%s: want a key, got %v", where, describe(tok))
	}
	return k, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return strconv.Quote(v.String())
	case string:
		return "string " + strconv.Quote(v)
	case json.Number:
		return "number " + v.String()
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	if err := expectDelim(dec, '{', MetadataKey); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for dec.More() {
		k, err := readKey(dec, MetadataKey)
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, invalid("%s: key %q appears twice", MetadataKey, k)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(MetadataKey, err)
		}
		v, ok := tok.(string)
		if !ok {
			return nil, invalid("%s: value of %q must be a string, got %v", MetadataKey, k, describe(tok))
		}
		m[k] = v
	}
	if err := expectDelim(dec, '}', MetadataKey); err != nil {
		return nil, err
	}
	return m, nil
}

func parseEntry(dec *json.Decoder, name string) (entry, error) {
	where := fmt.Sprintf("tensor %q", name)
	e := entry{name: name}
	if err := expectDelim(dec, '{', where); err != nil {
		return e, err
	}
	var haveDType, haveShape, haveOffsets bool
	for dec.More() {
		k, err := readKey(dec, where)
		if err != nil {
			return e, err
		}
		switch k {
		case "dtype":
			if haveDType {
				return e, invalid("%s: dtype appears twice", where)
			}
			haveDType = true
			tok, err := dec.Token()
			if err != nil {
				return e, jsonErr(where, err)
			}
			s, ok := tok.(string)
			if !ok {
				return e, invalid("%s: dtype must be a string, got %v", where, describe(tok))
			}
			e.dtype = preprocess.DType(s)
			if e.dtype.Size() == 0 {
				return e, invalid("%s: unknown dtype %q", where, s)
			}
		case "shape":
			if haveShape {
				return e, invalid("%s: shape appears twice", where)
			}
			haveShape = true
			dims, err := readUints(dec, where+" shape")
			if err != nil {
				return e, err
			}
			e.shape = make([]int, len(dims))
			for i, d := range dims {
				if d > math.MaxInt {
					return e, invalid("%s: shape dimension %d is too large", where, d)
				}
				e.shape[i] = int(d)
			}
		case "data_offsets":
			if haveOffsets {
				return e, invalid("%s: data_offsets appears twice", where)
			}
			haveOffsets = true
			offs, err := readUints(dec, where+" data_offsets")
			if err != nil {
				return e, err
			}
			if len(offs) != 2 {
				return e, invalid("%s: data_offsets must hold 2 numbers, got %d", where, len(offs))
			}
			e.begin, e.end = offs[0], offs[1]
			if e.begin > e.end {
				return e, invalid("%s: data_offsets [%d, %d] end before they begin", where, e.begin, e.end)
			}
		default:
			return e, invalid("%s: unknown key %q", where, k)
		}
	}
	if err := expectDelim(dec, '}', where); err != nil {
		return e, err
	}
	switch {
	case !haveDType:
		return e, invalid("%s: no dtype", where)
	case !haveShape:
		return e, invalid("%s: no shape", where)
	case !haveOffsets:
		return e, invalid("%s: no data_offsets", where)
	}
	n, ok := numElements(e.shape)
	if !ok {
		return e, invalid("%s: shape %v is too large", where, e.shape)
	}
	size := n * uint64(e.dtype.Size())
	if e.end-e.begin != size {
		return e, invalid("%s: shape %v of %s needs %d bytes, data_offsets [%d, %d] hold %d", where, e.shape, e.dtype, size, e.begin, e.end, e.end-e.begin)
	}
	return e, nil
}

// readUints reads a JSON array of non-negative integers.
func readUints(dec *json.Decoder, where string) ([]uint64, error) {
	if err := expectDelim(dec, '[', where); err != nil {
		return nil, err
	}
	out := []uint64{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(where, err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, invalid("%s: want a non-negative integer, got %v", where, describe(tok))
		}
		v, err := strconv.ParseUint(num.String(), 10, 64)
		if err != nil {
			return nil, invalid("%s: want a non-negative integer, got %s", where, num)
		}
		out = append(out, v)
	}
	if err := expectDelim(dec, ']', where); err != nil {
		return nil, err
	}
	return out, nil
}
