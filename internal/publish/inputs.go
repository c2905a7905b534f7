package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
)

// ReadOptions say how to read the inputs.
type ReadOptions struct {
	// Format of every input; FormatAuto (default) infers it per file from
	// its extension, directories' files included. Stdin needs a format,
	// except with JSON.Field set (JSON Lines) or Lines.
	Format Format
	// Lines reads every input as text lines (same as Format FormatLines).
	Lines bool
	// JSON options; JSON.Field set means every input is JSON Lines.
	JSON JSONLOptions
	// Tar options for WebDataset shards.
	Tar TarOptions
	// Parquet options.
	Parquet ParquetOptions
	// TFRecord options.
	TFRecord TFRecordOptions
	// StdinName is the id of "-" (the prefix of its record ids); default
	// "stdin". Give each distinct stream its own name, or its ids collide
	// with the previous run's within the duplicate window.
	StdinName string
	// Stdin is read for "-"; default os.Stdin.
	Stdin io.Reader
	// NoMmap turns off memory-mapping tar shards and TFRecord files. Mapped
	// inputs are sliced into records without copying; a mapped file that is
	// truncated while being published makes the process crash (SIGBUS), so
	// set this when inputs may change underneath.
	NoMmap bool
	// TempDir holds stdin spooled to a file for Parquet (which needs random
	// access); default os.TempDir().
	TempDir string
}

func (o *ReadOptions) setDefaults() {
	if o.StdinName == "" {
		o.StdinName = "stdin"
	}
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	switch {
	case o.Format != FormatAuto:
	case o.Lines:
		o.Format = FormatLines
	case o.JSON.Field != "":
		o.Format = FormatJSONL
	}
}

// Input is one file (or stdin) to read.
type Input struct {
	Path   string // "-" for stdin
	ID     string // prefix of its record ids
	Format Format
	Size   int64 // bytes, when known
}

// ErrNeedFormat is returned for stdin without a format.
var ErrNeedFormat = errors.New("reading stdin (-) needs --format")

// check says whether the options name what format f requires.
func (o ReadOptions) check(f Format) error {
	switch f {
	case FormatJSONL:
		if o.JSON.Field == "" {
			return errors.New("jsonl input needs --jsonl FIELD")
		}
	case FormatTar:
		if o.Tar.Ext == "" {
			return errors.New("tar input needs --ext (the payload member's extension, e.g. jpg); use --format files to publish the tar file itself")
		}
	case FormatParquet:
		if o.Parquet.Column == "" {
			return errors.New("parquet input needs --column (the payload column); use --format files to publish the file itself")
		}
	case FormatTFRecord:
		if o.TFRecord.Feature == "" {
			return errors.New("tfrecord input needs --feature (the payload feature, e.g. image/encoded); use --format files to publish the file itself")
		}
	}
	return nil
}

// Expand sends the inputs named by paths to out in order, walking
// directories recursively in lexical order, and closes out. A file
// argument's id is its base name; a file under a directory argument has its
// slash-separated path relative to that directory as id.
func Expand(ctx context.Context, paths []string, o ReadOptions, out chan<- Input) error {
	defer close(out)
	o.setDefaults()
	send := func(in Input) error {
		if err := o.check(in.Format); err != nil {
			return fmt.Errorf("%s: %w", in.Path, err)
		}
		select {
		case out <- in:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	format := func(name string) Format {
		if o.Format != FormatAuto {
			return o.Format
		}
		return FormatOf(name)
	}
	for _, p := range paths {
		if p == "-" {
			if o.Format == FormatAuto {
				return ErrNeedFormat
			}
			if err := send(Input{Path: "-", ID: o.StdinName, Format: o.Format, Size: -1}); err != nil {
				return err
			}
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			if err := send(Input{Path: p, ID: filepath.Base(p), Format: format(p), Size: st.Size()}); err != nil {
				return err
			}
			continue
		}
		err = filepath.WalkDir(p, func(file string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(p, file)
			if err != nil {
				return err
			}
			size := int64(-1)
			if info, err := d.Info(); err == nil {
				size = info.Size()
			}
			return send(Input{Path: file, ID: filepath.ToSlash(rel), Format: format(file), Size: size})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// countingReader adds what it reads to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n.Add(int64(k))
	return k, err
}

type countingReaderAt struct {
	r io.ReaderAt
	n *atomic.Int64
}

func (c countingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	k, err := c.r.ReadAt(b, off)
	c.n.Add(int64(k))
	return k, err
}

type readCloser struct {
	Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// Open opens one input in its format; read counts the input bytes read when
// not nil.
func Open(in Input, o ReadOptions, read *atomic.Int64) (ReadCloser, error) {
	o.setDefaults()
	if read == nil {
		read = new(atomic.Int64)
	}
	if err := o.check(in.Format); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Path, err)
	}
	var f *os.File
	var src io.Reader
	closeFn := func() error { return nil }
	if in.Path == "-" {
		src = countingReader{o.Stdin, read}
	} else {
		var err error
		f, err = os.Open(in.Path)
		if err != nil {
			return nil, err
		}
		src = countingReader{f, read}
		closeFn = f.Close
		if !o.NoMmap && in.Size > 0 && (in.Format == FormatTar || in.Format == FormatTFRecord) {
			if b, unmap, err := mapFile(f, in.Size); err == nil {
				m := newMapping(unmap)
				f.Close() // the mapping stays valid
				src = &byteSource{b: b, read: read, m: m}
				closeFn = func() error { m.release(); return nil }
			}
		}
	}
	fail := func(err error) (ReadCloser, error) {
		closeFn()
		return nil, err
	}
	var r Reader
	var err error
	switch in.Format {
	case FormatFiles, FormatAuto:
		r = NewFileReader(src, in.ID, in.Size)
	case FormatLines:
		r = NewLinesReader(src, in.ID)
	case FormatJSONL:
		r, err = NewJSONLReader(src, in.ID, o.JSON)
	case FormatTar:
		r, err = NewTarReader(src, in.ID, o.Tar)
	case FormatTFRecord:
		r, err = NewTFRecordReader(src, in.ID, o.TFRecord)
	case FormatParquet:
		var ra io.ReaderAt = f
		size := in.Size
		if f == nil { // stdin: spool to a file, Parquet's footer is at the end
			tmp, n, err := spool(o.Stdin, o.TempDir)
			if err != nil {
				return fail(fmt.Errorf("parquet %s: spool stdin: %w", in.ID, err))
			}
			read.Add(n)
			ra, size = tmp, n
			closeFn = func() error {
				tmp.Close()
				return os.Remove(tmp.Name())
			}
		} else {
			ra = countingReaderAt{f, read}
		}
		var p *ParquetReader
		p, err = NewParquetReader(ra, size, in.ID, o.Parquet)
		if err == nil {
			inner := closeFn
			closeFn = func() error { p.Close(); return inner() }
			r = p
		}
	default:
		err = fmt.Errorf("%w %q", ErrUnknownFormat, in.Format)
	}
	if err != nil {
		return fail(err)
	}
	return readCloser{r, closeFn}, nil
}

// spool copies r into a new temporary file.
func spool(r io.Reader, dir string) (*os.File, int64, error) {
	tmp, err := os.CreateTemp(dir, "stoker-publish-*.parquet")
	if err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(tmp, r)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, 0, err
	}
	return tmp, n, nil
}
