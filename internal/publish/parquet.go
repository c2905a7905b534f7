package publish

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// ParquetOptions says which columns of a Parquet file to publish. Column
// names are dotted paths for nested groups ("image.bytes" for a Hugging Face
// image struct); only columns that are not repeated can be used.
type ParquetOptions struct {
	// Column is the payload column, binary or string; required.
	Column string
	// IDColumn, when set, is a column whose value is the record id instead
	// of "<name>:<row index>".
	IDColumn string
	// MetaColumns are scalar columns carried as metadata; nulls are left out.
	MetaColumns []string
}

// ParquetReader yields one record per row of a Parquet file. It reads the
// row groups in order and, within a group, only the pages of the columns it
// needs, one page per column at a time, so memory stays bounded by a page
// per column however large the file.
type ParquetReader struct {
	f     *parquet.File
	name  string
	o     ParquetOptions
	cols  []int    // leaf column indexes: payload, id (if any), meta...
	names []string // the option names of cols
	group int      // next row group
	cur   []*columnCursor
	row   int64 // index of the next row in the file
}

// NewParquetReader opens the Parquet file in r (size bytes) and checks the
// columns named in o.
func NewParquetReader(r io.ReaderAt, size int64, name string, o ParquetOptions) (*ParquetReader, error) {
	if o.Column == "" {
		return nil, errors.New("parquet: no payload column given")
	}
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(1<<20))
	if err != nil {
		return nil, fmt.Errorf("parquet %s: %w", name, err)
	}
	p := &ParquetReader{f: f, name: name, o: o}
	names := []string{o.Column}
	if o.IDColumn != "" {
		names = append(names, o.IDColumn)
	}
	names = append(names, o.MetaColumns...)
	for _, n := range names {
		leaf, ok := f.Schema().Lookup(strings.Split(n, ".")...)
		if !ok {
			return nil, fmt.Errorf("parquet %s: no column %q (columns: %s)", name, n, columnList(f.Schema()))
		}
		if leaf.MaxRepetitionLevel > 0 {
			return nil, fmt.Errorf("parquet %s: column %q is repeated; only one value per row can be published", name, n)
		}
		if len(p.cols) == 0 {
			if kind := leaf.Node.Type().Kind(); kind != parquet.ByteArray && kind != parquet.FixedLenByteArray {
				return nil, fmt.Errorf("parquet %s: payload column %q holds %s, not binary or string", name, n, kind)
			}
		}
		p.cols = append(p.cols, leaf.ColumnIndex)
		p.names = append(p.names, n)
	}
	return p, nil
}

func columnList(s *parquet.Schema) string {
	var names []string
	for _, c := range s.Columns() {
		names = append(names, strings.Join(c, "."))
	}
	return strings.Join(names, ", ")
}

// NumRows is the number of rows in the file.
func (p *ParquetReader) NumRows() int64 { return p.f.NumRows() }

// Next returns the next row's payload.
func (p *ParquetReader) Next() (Record, error) {
	for p.cur == nil {
		if p.group >= len(p.f.RowGroups()) {
			return Record{}, io.EOF
		}
		rg := p.f.RowGroups()[p.group]
		p.group++
		if rg.NumRows() == 0 {
			continue
		}
		chunks := rg.ColumnChunks()
		p.cur = make([]*columnCursor, len(p.cols))
		for i, c := range p.cols {
			p.cur[i] = &columnCursor{pages: chunks[c].Pages(), buf: make([]parquet.Value, 16)}
		}
	}
	row := p.row
	p.row++
	vals := make([]parquet.Value, len(p.cur))
	for i, c := range p.cur {
		v, err := c.next()
		if errors.Is(err, io.EOF) && i == 0 {
			p.closeGroup()
			p.row--
			return p.Next()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Record{}, fmt.Errorf("parquet %s: row %d: column %q: %w", p.name, row, p.names[i], err)
		}
		vals[i] = v
	}
	where := p.name + ":" + strconv.FormatInt(row, 10)
	if vals[0].IsNull() {
		return Record{}, fmt.Errorf("parquet row %s: %w: column %q is null", where, ErrNoPayload, p.o.Column)
	}
	rec := Record{ID: where, Data: bytes.Clone(vals[0].ByteArray())}
	if rec.Data == nil {
		rec.Data = []byte{}
	}
	k := 1
	if p.o.IDColumn != "" {
		if vals[1].IsNull() {
			return Record{}, fmt.Errorf("parquet row %s: %w: id column %q is null", where, ErrCorrupt, p.o.IDColumn)
		}
		rec.ID = valueText(vals[1])
		k = 2
	}
	for i, name := range p.o.MetaColumns {
		v := vals[k+i]
		if v.IsNull() {
			continue
		}
		if rec.Meta == nil {
			rec.Meta = make(map[string]string, len(p.o.MetaColumns))
		}
		rec.Meta[name] = valueText(v)
	}
	return rec, nil
}

// valueText renders a scalar value as header text.
func valueText(v parquet.Value) string {
	switch v.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray())
	case parquet.Boolean:
		return strconv.FormatBool(v.Boolean())
	case parquet.Int32:
		return strconv.FormatInt(int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case parquet.Float:
		return strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)
	case parquet.Double:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64)
	}
	return v.String()
}

func (p *ParquetReader) closeGroup() {
	for _, c := range p.cur {
		c.pages.Close()
	}
	p.cur = nil
}

// Close releases the pages being read.
func (p *ParquetReader) Close() error {
	if p.cur != nil {
		p.closeGroup()
	}
	return nil
}

// columnCursor reads the values of one column chunk a page at a time.
type columnCursor struct {
	pages  parquet.Pages
	values parquet.ValueReader
	buf    []parquet.Value
	n, i   int
}

func (c *columnCursor) next() (parquet.Value, error) {
	for c.i >= c.n {
		if c.values == nil {
			page, err := c.pages.ReadPage()
			if err != nil {
				return parquet.Value{}, err
			}
			c.values = page.Values()
		}
		n, err := c.values.ReadValues(c.buf)
		c.n, c.i = n, 0
		if errors.Is(err, io.EOF) {
			c.values = nil
		} else if err != nil {
			return parquet.Value{}, err
		}
	}
	v := c.buf[c.i]
	c.i++
	return v, nil
}
