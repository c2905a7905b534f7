package publish

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The parts of tensorflow/core/example/{example,feature}.proto read here:
//
//	message Example   { Features features = 1; }
//	message Features  { map<string, Feature> feature = 1; }
//	message Feature   { oneof kind { BytesList bytes_list = 1;
//	                                 FloatList float_list = 2;
//	                                 Int64List int64_list = 3; } }
//	message BytesList { repeated bytes value = 1; }
//	message FloatList { repeated float value = 1 [packed = true]; }
//	message Int64List { repeated int64 value = 1 [packed = true]; }
//
// A map entry is a message { string key = 1; Feature value = 2; }.

// Feature is one tf.train.Feature: exactly one of the lists is used.
type Feature struct {
	Bytes [][]byte
	Float []float32
	Int64 []int64
}

// scalar renders a feature as a header value: a single bytes value that is
// one line of text, or the numbers of an int64 or float list joined by
// commas.
func (f Feature) scalar() (string, bool) {
	switch {
	case len(f.Bytes) == 1:
		b := f.Bytes[0]
		if len(b) > 1024 || !utf8.Valid(b) || strings.ContainsFunc(string(b), unicode.IsControl) {
			return "", false
		}
		return string(b), true
	case len(f.Int64) > 0:
		s := make([]string, len(f.Int64))
		for i, v := range f.Int64 {
			s[i] = strconv.FormatInt(v, 10)
		}
		return strings.Join(s, ","), true
	case len(f.Float) > 0:
		s := make([]string, len(f.Float))
		for i, v := range f.Float {
			s[i] = strconv.FormatFloat(float64(v), 'g', -1, 32)
		}
		return strings.Join(s, ","), true
	}
	return "", false
}

// EncodeExample encodes a tf.train.Example with the given features, in
// sorted key order so equal inputs give equal bytes.
func EncodeExample(features map[string]Feature) []byte {
	keys := make([]string, 0, len(features))
	for k := range features {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var fs []byte
	for _, k := range keys {
		f := features[k]
		var kind []byte
		var list []byte
		switch {
		case f.Bytes != nil:
			for _, v := range f.Bytes {
				list = protowire.AppendTag(list, 1, protowire.BytesType)
				list = protowire.AppendBytes(list, v)
			}
			kind = protowire.AppendTag(kind, 1, protowire.BytesType)
		case f.Float != nil:
			var packed []byte
			for _, v := range f.Float {
				packed = protowire.AppendFixed32(packed, math.Float32bits(v))
			}
			list = protowire.AppendTag(list, 1, protowire.BytesType)
			list = protowire.AppendBytes(list, packed)
			kind = protowire.AppendTag(kind, 2, protowire.BytesType)
		case f.Int64 != nil:
			var packed []byte
			for _, v := range f.Int64 {
				packed = protowire.AppendVarint(packed, uint64(v))
			}
			list = protowire.AppendTag(list, 1, protowire.BytesType)
			list = protowire.AppendBytes(list, packed)
			kind = protowire.AppendTag(kind, 3, protowire.BytesType)
		}
		var feature []byte
		if kind != nil {
			feature = append(kind, protowire.AppendVarint(nil, uint64(len(list)))...)
			feature = append(feature, list...)
		}
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, k)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendBytes(entry, feature)
		fs = protowire.AppendTag(fs, 1, protowire.BytesType)
		fs = protowire.AppendBytes(fs, entry)
	}
	var ex []byte
	ex = protowire.AppendTag(ex, 1, protowire.BytesType)
	return protowire.AppendBytes(ex, fs)
}

// errProto wraps protobuf decoding errors.
var errProto = errors.New("tf.train.Example")

// ParseExample decodes the features named in want from a serialized
// tf.train.Example (all features when want is nil). Bytes values alias b.
func ParseExample(b []byte, want []string) (map[string]Feature, error) {
	out := make(map[string]Feature, len(want))
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType { // Example.features
			return nil
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, entry []byte) error {
			if num != 1 || typ != protowire.BytesType { // Features.feature map entry
				return nil
			}
			var key string
			var value []byte
			err := eachField(entry, func(num protowire.Number, typ protowire.Type, v []byte) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					key = string(v)
				case num == 2 && typ == protowire.BytesType:
					value = v
				}
				return nil
			})
			if err != nil {
				return err
			}
			if want != nil && !slices.Contains(want, key) {
				return nil
			}
			f, err := parseFeature(value)
			if err != nil {
				return fmt.Errorf("feature %q: %w", key, err)
			}
			out[key] = f
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errProto, err)
	}
	return out, nil
}

func parseFeature(b []byte) (Feature, error) {
	var f Feature
	err := eachField(b, func(num protowire.Number, typ protowire.Type, list []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			f = Feature{Bytes: [][]byte{}}
			return eachField(list, func(n protowire.Number, t protowire.Type, v []byte) error {
				if n == 1 && t == protowire.BytesType {
					f.Bytes = append(f.Bytes, v)
				}
				return nil
			})
		case 2:
			f = Feature{Float: []float32{}}
			return eachValue(list, protowire.Fixed32Type, func(v uint64) { f.Float = append(f.Float, math.Float32frombits(uint32(v))) })
		case 3:
			f = Feature{Int64: []int64{}}
			return eachValue(list, protowire.VarintType, func(v uint64) { f.Int64 = append(f.Int64, int64(v)) })
		}
		return nil
	})
	return f, err
}

// eachField calls fn for every field of a message; v is the field's raw
// value for bytes fields and nil otherwise.
func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// eachValue decodes a repeated numeric field 1 of a list message, packed or
// not.
func eachValue(b []byte, elem protowire.Type, fn func(uint64)) error {
	consume := func(b []byte) (uint64, int) {
		if elem == protowire.Fixed32Type {
			v, n := protowire.ConsumeFixed32(b)
			return uint64(v), n
		}
		return protowire.ConsumeVarint(b)
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			packed, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			b = b[m:]
			for len(packed) > 0 {
				v, k := consume(packed)
				if k < 0 {
					return protowire.ParseError(k)
				}
				packed = packed[k:]
				fn(v)
			}
		case num == 1 && typ == elem:
			v, m := consume(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			b = b[m:]
			fn(v)
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			b = b[m:]
		}
	}
	return nil
}
