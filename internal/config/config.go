package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stoker-ml/stoker/internal/batch"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// defaultYAML is a byte-for-byte copy of deploy/stoker.yaml (a test checks).
//
//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the built-in configuration file, for `stoker` to
// print or write out.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the built-in configuration: deploy/stoker.yaml parsed.
func Default() *Config {
	c, err := Parse(defaultYAML, "default.yaml")
	if err != nil {
		panic("config: the built-in default.yaml is invalid: " + err.Error())
	}
	return c
}

// Load reads the file at path, applies the defaults, resolves relative file
// paths against the file's directory, checks that the files it names exist,
// and validates the result.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	var errs []*FieldError
	check := func(key string, p *string) {
		if *p == "" {
			return
		}
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
		if _, err := os.Stat(*p); err != nil {
			errs = append(errs, &FieldError{Source: path, Path: key, Reason: fmt.Sprintf("cannot read %s: %v", *p, errors.Unwrap(err))})
		}
	}
	check("nats.creds", &c.NATS.Creds)
	check("nats.nkey", &c.NATS.NKey)
	check("nats.tls.cert", &c.NATS.TLS.Cert)
	check("nats.tls.key", &c.NATS.TLS.Key)
	check("nats.tls.ca", &c.NATS.TLS.CA)
	for i := range c.Pipelines {
		if t := c.Pipelines[i].Text; t != nil {
			check(fmt.Sprintf("pipelines[%d].text.tokenizer", i), &t.Tokenizer)
		}
	}
	if err := joinFieldErrors(errs); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse reads a configuration file's content; source names it in errors.
// It applies the defaults and validates; the error lists every problem,
// each a *FieldError with the key's path and line.
func Parse(data []byte, source string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	f := defaultFile()
	d := &decoder{lines: map[string]int{}}
	if root.Kind != 0 { // an empty file is all defaults
		d.decode("", &root, reflect.ValueOf(&f).Elem())
	}
	if f.Pipelines == nil {
		for _, name := range defaultPipelineNames {
			f.Pipelines = append(f.Pipelines, defaultPipeline(name, name))
		}
	}
	c, convErrs := f.toConfig()
	errs := append(d.errs, convErrs...)
	// Every problem is listed: an unknown key or a value of the wrong type
	// does not hide the others. A key that did not decode keeps its
	// default, so its own validation says nothing new: it is left out.
	failed := make([]string, len(errs))
	for i, e := range errs {
		failed[i] = e.Path
	}
	for _, e := range c.validate() {
		if !slices.ContainsFunc(failed, func(p string) bool { return within(e.Path, p) }) {
			errs = append(errs, e)
		}
	}
	for _, e := range errs {
		e.Source = source
		if e.Line == 0 {
			e.Line = d.lineOf(e.Path)
		}
	}
	if err := joinFieldErrors(errs); err != nil {
		return nil, err
	}
	return c, nil
}

// within reports whether path is key or inside it.
func within(path, key string) bool {
	return path == key || strings.HasPrefix(path, key+".") || strings.HasPrefix(path, key+"[")
}

// lineOf finds the line of path or of its nearest ancestor in the file.
func (d *decoder) lineOf(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// Pipeline returns the pipeline called name.
func (c *Config) Pipeline(name string) (*Pipeline, bool) {
	for i := range c.Pipelines {
		if c.Pipelines[i].Name == name {
			return &c.Pipelines[i], true
		}
	}
	return nil, false
}

// Validate checks the whole configuration and returns every problem, each a
// *FieldError naming the key path and the reason, joined; nil when valid.
func (c *Config) Validate() error {
	return joinFieldErrors(c.validate())
}

// toConfig converts the decoded file, reporting what cannot be represented
// (a mean of 2 numbers, an unknown dtype name).
func (f *fileConfig) toConfig() (*Config, []*FieldError) {
	var errs []*FieldError
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	c := &Config{
		NATS: NATS{
			URL: f.NATS.URL, Creds: f.NATS.Creds, User: f.NATS.User, Password: f.NATS.Password,
			Token: f.NATS.Token, NKey: f.NATS.NKey, Name: f.NATS.Name,
			TLS: TLS{Cert: f.NATS.TLS.Cert, Key: f.NATS.TLS.Key, CA: f.NATS.TLS.CA},
		},
		Embedded:     Embedded{Listen: f.Embedded.Listen, DataDir: f.Embedded.DataDir},
		Metrics:      Metrics{Addr: f.Metrics.Addr},
		Device:       f.Device,
		DrainTimeout: time.Duration(f.DrainTimeout),
		CPUFallback:  f.CPUFallback,
	}
	if c.Metrics.Addr == "off" { // as --metrics-addr off
		c.Metrics.Addr = ""
	}
	for i, fp := range f.Pipelines {
		at := fmt.Sprintf("pipelines[%d]", i)
		p := Pipeline{
			Name: fp.Name, Kind: fp.Kind,
			Subjects: fp.Subjects, Stream: fp.Stream, Consumer: fp.Consumer,
			Output: fp.Output, OutputStream: fp.OutputStream, OutputMode: fp.OutputMode,
			DeadLetter: fp.DeadLetter, DeadLetterStream: fp.DeadLetterStream,
			Batch:  batch.Policy{MaxItems: fp.Batch.MaxItems, MaxBytes: int64(fp.Batch.MaxBytes), MaxWait: time.Duration(fp.Batch.MaxWait)},
			Limits: Limits{MaxBytes: int64(fp.Limits.MaxBytes), MaxPixels: fp.Limits.MaxPixels},
			Streams: Streams{
				Replicas: fp.Streams.Replicas, InputRetention: fp.Streams.InputRetention,
				InputMaxAge: time.Duration(fp.Streams.InputMaxAge), InputMaxBytes: int64(fp.Streams.InputMaxBytes),
				OutputMaxAge: time.Duration(fp.Streams.OutputMaxAge), OutputMaxBytes: int64(fp.Streams.OutputMaxBytes),
			},
			AckWait:          time.Duration(fp.AckWait),
			MaxDeliver:       fp.MaxDeliver,
			MaxAckPending:    fp.MaxAckPending,
			MaxInflightBytes: int64(fp.MaxInflightBytes),
			Threads:          fp.Threads,
			InflightBatches:  fp.InflightBatches,
		}
		for _, d := range fp.RetryBackoff {
			p.RetryBackoff = append(p.RetryBackoff, time.Duration(d))
		}
		if p.MaxAckPending == 0 {
			p.MaxAckPending = DeriveMaxAckPending(p.Batch, p.MaxInflightBytes)
		}
		if fp.Image != nil && fp.Kind == KindText {
			bad(at+".image", "not allowed in a text pipeline")
		}
		if fp.Text != nil && fp.Kind == KindImage {
			bad(at+".text", "not allowed in an image pipeline")
		}
		// A section is converted only for its own kind; a pipeline of unknown
		// kind gets neither (validate reports the kind).
		if fi := fp.Image; fi != nil && fp.Kind == KindImage {
			s := image.DefaultSpec()
			s.Resize, s.Crop, s.Layout = fi.Resize, fi.Crop, image.Layout(fi.Layout)
			s.DecodeMemory = int64(fi.DecodeMemory)
			for _, f := range []struct {
				name string
				vals []float64
			}{{"mean", fi.Mean}, {"std", fi.Std}} {
				if len(f.vals) != 3 {
					bad(at+".image."+f.name, "want 3 numbers (red, green, blue), got %d", len(f.vals))
				}
			}
			if len(fi.Mean) == 3 && len(fi.Std) == 3 {
				for k := range 3 {
					s.Mean[k], s.Std[k] = float32(fi.Mean[k]), float32(fi.Std[k])
				}
			}
			dt, err := preprocess.ParseDType(fi.DType)
			if err != nil {
				bad(at+".image.dtype", "%v", err)
			}
			s.DType = dt
			s.MaxBytes, s.MaxPixels = p.Limits.MaxBytes, p.Limits.MaxPixels
			p.Image = &s
		}
		if ft := fp.Text; ft != nil && fp.Kind == KindText {
			s := text.DefaultSpec()
			s.Tokenizer, s.MaxLength, s.Truncation = ft.Tokenizer, ft.MaxLength, ft.Truncation
			s.Padding, s.InvalidUTF8 = text.Padding(ft.Padding), text.InvalidUTF8(ft.InvalidUTF8)
			dt, err := preprocess.ParseDType(ft.IDDType)
			if err != nil {
				bad(at+".text.id_dtype", "%v", err)
			}
			s.IDType = dt
			s.MaxBytes = p.Limits.MaxBytes
			p.Text = &s
		}
		c.Pipelines = append(c.Pipelines, p)
	}
	return c, errs
}
