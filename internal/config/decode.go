package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder walks a YAML node tree and a Go value together, setting only the
// fields the file names, refusing unknown and duplicate keys, and
// remembering the line of every key path for later error messages.
type decoder struct {
	lines map[string]int // key path → line
	errs  []*FieldError
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Line: n.Line, Reason: fmt.Sprintf(format, args...)})
}

// decode sets v from n. path names v in messages ("" for the root).
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		d.decode(path, n.Content[0], v)
		return
	}
	if path != "" {
		if _, seen := d.lines[path]; !seen {
			d.lines[path] = n.Line
		}
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(path, n, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return // an empty section keeps its default (or stays absent)
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(path, n, v.Elem())
	case reflect.Struct:
		d.decodeMapping(path, n, v)
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "want a list, got %s", nodeKind(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if p, ok := s.Index(i).Addr().Interface().(*filePipeline); ok {
				*p = pipelineDefaultsFor(item)
			}
			d.decode(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i))
		}
		v.Set(s)
	default:
		d.decodeScalar(path, n, v)
	}
}

func (d *decoder) decodeMapping(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "want a mapping of keys, got %s", nodeKind(n))
		return
	}
	fields := map[string]int{}
	var known []string
	for i := range v.NumField() {
		tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			fields[tag] = i
			known = append(known, tag)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		kp := key
		if path != "" {
			kp = path + "." + key
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k, "a key must be a plain name, got %s", nodeKind(k))
			continue
		}
		if line, dup := seen[key]; dup {
			d.fail(kp, k, "key given twice (first on line %d)", line)
			continue
		}
		seen[key] = k.Line
		idx, ok := fields[key]
		if !ok {
			d.fail(kp, k, "unknown key (known keys here: %s)", strings.Join(known, ", "))
			continue
		}
		d.lines[kp] = k.Line
		d.decode(kp, val, v.Field(idx))
	}
}

func (d *decoder) decodeScalar(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "want a single value, got %s", nodeKind(n))
		return
	}
	var want string
	switch v.Kind() {
	case reflect.String:
		if n.Tag == "!!null" {
			v.SetString("")
			return
		}
		want = "a string"
	case reflect.Int, reflect.Int64:
		want = "a whole number"
	case reflect.Float64:
		want = "a number"
	case reflect.Bool:
		want = "true or false"
	default:
		d.fail(path, n, "cannot be set from the file (internal error: %s)", v.Type())
		return
	}
	if n.Tag == "!!null" {
		d.fail(path, n, "want %s, got nothing", want)
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.fail(path, n, "want %s, got %q", want, n.Value)
	}
}

// pipelineDefaultsFor reads a pipeline's name and kind from its node, before
// decoding the rest over the defaults they imply.
func pipelineDefaultsFor(n *yaml.Node) filePipeline {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	var name, kind string
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				continue
			}
			switch k.Value {
			case "name":
				name = v.Value
			case "kind":
				kind = v.Value
			}
		}
	}
	if kind == "" && (name == KindImage || name == KindText) {
		kind = name
	}
	return defaultPipeline(name, kind)
}
