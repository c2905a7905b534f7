package publish

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TarOptions says which member of a WebDataset sample is the payload.
type TarOptions struct {
	// Ext is the payload member's extension without the dot ("jpg",
	// "txt", "seg.png"); required.
	Ext string
	// MaxMetaBytes is the largest other member carried as metadata; larger
	// ones, and ones that are not single-line text (JSON is compacted), are
	// left out. Default 1024; negative carries none.
	MaxMetaBytes int
	// MaxPayloadBytes bounds the payload member; a larger one is reported as
	// [ErrTooLarge] and skipped without being read. Default 64 MiB.
	MaxPayloadBytes int64
}

// TarReader yields one record per WebDataset sample of a tar stream
// (optionally gzip-compressed). Members are grouped by key: the member's
// path up to the first dot of its base name ("a/b/000123.seg.png" has key
// "a/b/000123" and extension "seg.png"); consecutive members with the same
// key form a sample. The record id is "<name>/<key>", its data the member
// with extension Ext, its metadata the other small members by extension.
type TarReader struct {
	tr   *tar.Reader
	src  *byteSource // set when the shard is in memory: payloads are not copied
	name string
	o    TarOptions
	// held is a header read ahead that starts the next sample.
	held *tar.Header
	err  error // sticky: the error that ended the stream
}

// NewTarReader reads a WebDataset shard from r; gzip input is detected by
// its magic bytes. name is the shard's id, the prefix of every record id.
func NewTarReader(r io.Reader, name string, o TarOptions) (*TarReader, error) {
	if o.Ext == "" {
		return nil, errors.New("tar: no payload extension given")
	}
	o.Ext = strings.TrimPrefix(o.Ext, ".")
	if o.MaxMetaBytes == 0 {
		o.MaxMetaBytes = 1024
	}
	if o.MaxPayloadBytes == 0 {
		o.MaxPayloadBytes = 64 << 20
	}
	if src, ok := r.(*byteSource); ok && !bytes.HasPrefix(src.b[src.off:], []byte{0x1f, 0x8b}) {
		// A mapped shard: payloads are sliced out of the mapping.
		return &TarReader{tr: tar.NewReader(src), src: src, name: name, o: o}, nil
	}
	br := bufio.NewReaderSize(r, 32<<10) // small: larger reads bypass the buffer, no double copy
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("tar %s: gzip: %w", name, err)
		}
		return &TarReader{tr: tar.NewReader(zr), name: name, o: o}, nil
	}
	return &TarReader{tr: tar.NewReader(br), name: name, o: o}, nil
}

// splitKey splits a member path into the WebDataset key and extension.
func splitKey(p string) (key, ext string) {
	dir, base := path.Split(p)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		return dir + base[:i], base[i+1:]
	}
	return p, ""
}

// nextMember returns the next regular file's header.
func (t *TarReader) nextMember() (*tar.Header, error) {
	if h := t.held; h != nil {
		t.held = nil
		return h, nil
	}
	for {
		h, err := t.tr.Next()
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg { // the reader reports old-style regular files as TypeReg too
			continue
		}
		if base := path.Base(h.Name); strings.HasPrefix(base, "._") {
			continue // macOS resource forks
		}
		return h, nil
	}
}

// Next returns the next sample.
func (t *TarReader) Next() (Record, error) {
	if t.err != nil {
		return Record{}, t.err
	}
	rec, err := t.next()
	if err != nil && !recoverable(err) {
		err = t.wrap(err)
		t.err = err
	}
	return rec, err
}

func (t *TarReader) wrap(err error) error {
	if errors.Is(err, io.EOF) {
		return err
	}
	return fmt.Errorf("tar %s: %w", t.name, err)
}

func (t *TarReader) next() (_ Record, err error) {
	h, err := t.nextMember()
	if err != nil {
		return Record{}, err
	}
	key, _ := splitKey(path.Clean(h.Name))
	rec := Record{ID: t.name + "/" + key}
	defer func() {
		if err != nil {
			rec.Release()
		}
	}()
	var problem error
	found := false
	for {
		_, ext := splitKey(path.Clean(h.Name))
		switch {
		case ext == t.o.Ext && found:
			problem = fmt.Errorf("sample %s: %w: two .%s members", rec.ID, ErrCorrupt, ext)
		case ext == t.o.Ext && h.Size > t.o.MaxPayloadBytes:
			problem = fmt.Errorf("sample %s: %w: member %s is %d bytes, over the %d limit", rec.ID, ErrTooLarge, h.Name, h.Size, t.o.MaxPayloadBytes)
			found = true
		case ext == t.o.Ext && t.src != nil:
			// archive/tar has read exactly the header: the data starts at
			// the source's offset, and the next call to Next seeks past it.
			data, rel, ok := t.src.slice(t.src.off, h.Size)
			if !ok {
				return Record{}, fmt.Errorf("member %s: %w", h.Name, io.ErrUnexpectedEOF)
			}
			rec.Data, rec.rel = data, rel
			found = true
		case ext == t.o.Ext:
			data := make([]byte, h.Size)
			if _, err := io.ReadFull(t.tr, data); err != nil {
				return Record{}, fmt.Errorf("member %s: %w", h.Name, err)
			}
			rec.Data = data
			found = true
		case ext != "" && h.Size <= int64(t.o.MaxMetaBytes):
			buf := make([]byte, h.Size)
			if _, err := io.ReadFull(t.tr, buf); err != nil {
				return Record{}, fmt.Errorf("member %s: %w", h.Name, err)
			}
			if v, ok := headerValue(buf); ok {
				if rec.Meta == nil {
					rec.Meta = make(map[string]string, 2)
				}
				rec.Meta[ext] = v
			}
		}
		h, err = t.nextMember()
		if err != nil {
			// The sample is complete; the error (io.EOF included) ends the
			// stream at the next call.
			t.err = t.wrap(err)
			break
		}
		if k, _ := splitKey(path.Clean(h.Name)); k != key {
			t.held = h
			break
		}
	}
	if problem != nil {
		return Record{}, problem
	}
	if !found {
		return Record{}, fmt.Errorf("sample %s: %w: no .%s member", rec.ID, ErrNoPayload, t.o.Ext)
	}
	return rec, nil
}

// headerValue makes a small member a header value: surrounding white space
// trimmed, JSON compacted onto one line, anything else with control
// characters or invalid UTF-8 refused.
func headerValue(b []byte) (string, bool) {
	b = bytes.TrimSpace(b)
	if !utf8.Valid(b) {
		return "", false
	}
	if bytes.ContainsFunc(b, unicode.IsControl) {
		var c bytes.Buffer
		if json.Compact(&c, b) != nil || bytes.ContainsFunc(c.Bytes(), unicode.IsControl) {
			return "", false
		}
		b = c.Bytes()
	}
	return string(b), true
}
