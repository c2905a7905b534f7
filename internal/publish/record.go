package publish

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Record is one item to publish.
type Record struct {
	// ID is stable across runs over the same input; it becomes the
	// Nats-Msg-Id header.
	ID string
	// Data is the payload. A reader never reuses it after handing it out.
	Data []byte
	// Meta holds small named values (WebDataset side members, Parquet
	// columns, TFRecord features, JSON fields) published as headers
	// Stoker-Meta-<name>.
	Meta map[string]string

	rel *releaser // the mapping Data aliases, if any; see Release
}

// Reader yields the records of one input in order. Next returns io.EOF after
// the last record. An error wrapping [ErrCorrupt], [ErrNoPayload] or
// [ErrTooLarge] concerns one record only: the caller may call Next again to
// go on with the rest. Any other error ends the input.
type Reader interface {
	Next() (Record, error)
}

// ReadCloser is a Reader over an open input.
type ReadCloser interface {
	Reader
	io.Closer
}

// Errors that skip one record and let reading go on.
var (
	// ErrCorrupt: the record could not be decoded (bad checksum, bad JSON,
	// truncated data). Counted as a failure.
	ErrCorrupt = errors.New("corrupt record")
	// ErrNoPayload: the record is readable but has no payload to publish
	// (a sample without the wanted extension, a null column, a missing
	// field or feature). Counted as skipped, not as a failure.
	ErrNoPayload = errors.New("no payload")
	// ErrTooLarge: the record is larger than the reader's limit. Counted as a
	// failure.
	ErrTooLarge = errors.New("record too large")
)

// recoverable reports whether err concerns one record only.
func recoverable(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNoPayload) || errors.Is(err, ErrTooLarge)
}

// Format names an input format.
type Format string

// The formats. FormatAuto infers the format of each file argument from its
// extension (directories and unknown extensions read as files).
const (
	FormatAuto     Format = ""
	FormatFiles    Format = "files"
	FormatLines    Format = "lines"
	FormatJSONL    Format = "jsonl"
	FormatTar      Format = "tar"
	FormatParquet  Format = "parquet"
	FormatTFRecord Format = "tfrecord"
)

// Formats lists the formats a user may name.
var Formats = []Format{FormatFiles, FormatLines, FormatJSONL, FormatTar, FormatParquet, FormatTFRecord}

// ErrUnknownFormat is returned by ParseFormat for a name it does not know.
var ErrUnknownFormat = errors.New("unknown format")

// ParseFormat maps a format name to a Format; "" and "auto" mean FormatAuto.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "auto":
		return FormatAuto, nil
	}
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w %q (want one of files, lines, jsonl, tar, parquet, tfrecord)", ErrUnknownFormat, s)
}

// FormatOf infers a format from a file name's extension, or FormatFiles.
// JSON Lines and text lines are never inferred (issue 2 publishes a .jsonl
// file as one message unless --jsonl or --lines says otherwise).
func FormatOf(name string) Format {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".tar"), strings.HasSuffix(n, ".tar.gz"), strings.HasSuffix(n, ".tgz"):
		return FormatTar
	}
	switch path.Ext(n) {
	case ".parquet", ".pq":
		return FormatParquet
	case ".tfrecord", ".tfrecords", ".tfrec":
		return FormatTFRecord
	}
	return FormatFiles
}
