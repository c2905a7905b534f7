package publish

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// FileReader yields one record holding the whole of an input.
type FileReader struct {
	r    io.Reader
	id   string
	size int64
	done bool
}

// NewFileReader reads r as one record with the given id. size, when
// positive, is the expected size and saves reallocations.
func NewFileReader(r io.Reader, id string, size int64) *FileReader {
	return &FileReader{r: r, id: id, size: size}
}

// Next returns the input as one record, then io.EOF.
func (f *FileReader) Next() (Record, error) {
	if f.done {
		return Record{}, io.EOF
	}
	f.done = true
	var buf bytes.Buffer
	if f.size > 0 {
		buf.Grow(int(f.size) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(f.r); err != nil {
		return Record{}, fmt.Errorf("file %q: %w", f.id, err)
	}
	return Record{ID: f.id, Data: buf.Bytes()}, nil
}

// LinesReader yields one record per non-empty line of text. Lines end at
// "\n" (a "\r" before it is dropped); empty lines are skipped but counted.
type LinesReader struct {
	br   *bufio.Reader
	name string
	line int
}

// NewLinesReader reads lines from r; record ids are "<name>:<line>" with
// lines counted from 0.
func NewLinesReader(r io.Reader, name string) *LinesReader {
	return &LinesReader{br: bufio.NewReaderSize(r, 64<<10), name: name}
}

// nextLine returns the next line without its end, its number, and io.EOF
// after the last one.
func (l *LinesReader) nextLine() ([]byte, int, error) {
	b, err := l.br.ReadBytes('\n')
	if len(b) == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, 0, io.EOF
		}
		return nil, 0, fmt.Errorf("%s: line %d: %w", l.name, l.line, err)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("%s: line %d: %w", l.name, l.line, err)
	}
	n := l.line
	l.line++
	b = bytes.TrimSuffix(b, []byte{'\n'})
	b = bytes.TrimSuffix(b, []byte{'\r'})
	return b, n, nil
}

// Next returns the next non-empty line.
func (l *LinesReader) Next() (Record, error) {
	for {
		b, n, err := l.nextLine()
		if err != nil {
			return Record{}, err
		}
		if len(b) == 0 {
			continue
		}
		return Record{ID: l.name + ":" + strconv.Itoa(n), Data: b}, nil
	}
}

// JSONLOptions says which fields of a JSON line to publish.
type JSONLOptions struct {
	// Field names the string field that is the payload; required.
	Field string
	// IDField, when set, names a string or number field used as the record
	// id instead of "<name>:<line>".
	IDField string
	// MetaFields are scalar fields carried as metadata when present.
	MetaFields []string
}

// JSONLReader yields one record per JSON line: the string value of one
// field. A line that is not a JSON object is reported as [ErrCorrupt], one
// without the field (or with a non-string value) as [ErrNoPayload].
type JSONLReader struct {
	lines *LinesReader
	o     JSONLOptions
}

// NewJSONLReader reads JSON lines from r; ids are "<name>:<line>" unless
// o.IDField is set.
func NewJSONLReader(r io.Reader, name string, o JSONLOptions) (*JSONLReader, error) {
	if o.Field == "" {
		return nil, errors.New("jsonl: no payload field given")
	}
	return &JSONLReader{lines: NewLinesReader(r, name), o: o}, nil
}

// Next returns the payload field of the next non-empty line.
func (j *JSONLReader) Next() (Record, error) {
	var b []byte
	var n int
	for {
		var err error
		b, n, err = j.lines.nextLine()
		if err != nil {
			return Record{}, err
		}
		if len(bytes.TrimSpace(b)) != 0 {
			break
		}
	}
	where := j.lines.name + ":" + strconv.Itoa(n)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return Record{}, fmt.Errorf("line %s: %w: %v", where, ErrCorrupt, err)
	}
	raw, ok := obj[j.o.Field]
	if !ok {
		return Record{}, fmt.Errorf("line %s: %w: no field %q", where, ErrNoPayload, j.o.Field)
	}
	var payload string
	if err := json.Unmarshal(raw, &payload); err != nil {
		return Record{}, fmt.Errorf("line %s: %w: field %q is %s, not a string", where, ErrNoPayload, j.o.Field, jsonKind(raw))
	}
	rec := Record{ID: where, Data: []byte(payload)}
	if j.o.IDField != "" {
		id, ok := jsonScalar(obj[j.o.IDField])
		if !ok || id == "" {
			return Record{}, fmt.Errorf("line %s: %w: id field %q is missing or not a string or number", where, ErrCorrupt, j.o.IDField)
		}
		rec.ID = id
	}
	for _, f := range j.o.MetaFields {
		if v, ok := jsonScalar(obj[f]); ok {
			if rec.Meta == nil {
				rec.Meta = make(map[string]string, len(j.o.MetaFields))
			}
			rec.Meta[f] = v
		}
	}
	return rec, nil
}

// jsonScalar renders a JSON string, number or boolean as text.
func jsonScalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), true
	}
	return "", false
}

func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}
