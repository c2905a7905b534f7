package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stoker-ml/stoker/preprocess"
)

// fileOf assembles a safetensors file from a raw header string and data,
// without any of Encode's logic, so decode tests control every byte.
func fileOf(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func f32Bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// everyDType returns one tensor per dtype stoker knows, with values whose
// bytes are written out independently of the package under test.
func everyDType() []preprocess.Tensor {
	var f16, bf16, i64, i32 []byte
	for _, v := range []float32{0, 1, -2.5, 65504} {
		f16 = binary.LittleEndian.AppendUint16(f16, preprocess.Float16Bits(v))
		bf16 = binary.LittleEndian.AppendUint16(bf16, preprocess.BFloat16Bits(v))
	}
	for _, v := range []int64{101, -1, math.MaxInt64, 0, 7, 102} {
		i64 = binary.LittleEndian.AppendUint64(i64, uint64(v))
	}
	for _, v := range []int32{1, -1, math.MinInt32} {
		i32 = binary.LittleEndian.AppendUint32(i32, uint32(v))
	}
	return []preprocess.Tensor{
		{Name: "pixel_values", DType: preprocess.Float32, Shape: []int{1, 3, 1, 2}, Data: f32Bytes(0.5, -1, 2, 3, float32(math.Inf(1)), 1e-30)},
		{Name: "half", DType: preprocess.Float16, Shape: []int{2, 2}, Data: f16},
		{Name: "brain", DType: preprocess.BFloat16, Shape: []int{4}, Data: bf16},
		{Name: "raw", DType: preprocess.Uint8, Shape: []int{1, 2, 2, 3}, Data: []byte{0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255}},
		{Name: "input_ids", DType: preprocess.Int64, Shape: []int{2, 3}, Data: i64},
		{Name: "lengths", DType: preprocess.Int32, Shape: []int{3}, Data: i32},
		{Name: "empty", DType: preprocess.Float32, Shape: []int{0, 3}, Data: []byte{}},
		{Name: "scalar", DType: preprocess.Uint8, Shape: []int{}, Data: []byte{42}},
	}
}

func TestRoundTripEveryDType(t *testing.T) {
	tensors := everyDType()
	meta := map[string]string{
		"pipeline": "image",
		"ids":      `["a.jpg","b \"quoted\".png"]`,
		"weird":    "tab\tnewline\n\x01 ünï ✓",
		"":         "empty key",
	}
	for _, tc := range []struct {
		name string
		meta map[string]string
	}{
		{"with metadata", meta},
		{"without metadata", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := Encode(tensors, tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			if got := EncodedSize(tensors, tc.meta); got != len(enc) {
				t.Errorf("EncodedSize = %d, Encode wrote %d bytes", got, len(enc))
			}
			if hl := binary.LittleEndian.Uint64(enc); hl%8 != 0 {
				t.Errorf("header length %d is not a multiple of 8", hl)
			}
			got, gotMeta, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tensors) {
				t.Errorf("tensors differ after round trip:\n got %+v\nwant %+v", got, tensors)
			}
			if len(tc.meta) == 0 {
				if gotMeta != nil {
					t.Errorf("metadata = %v, want nil", gotMeta)
				}
			} else if !reflect.DeepEqual(gotMeta, tc.meta) {
				t.Errorf("metadata = %q, want %q", gotMeta, tc.meta)
			}
		})
	}
}

// TestGolden checks a tiny file whose every byte was worked out by hand.
func TestGolden(t *testing.T) {
	tensors := []preprocess.Tensor{{Name: "a", DType: preprocess.Float32, Shape: []int{2}, Data: f32Bytes(1, 2)}}
	meta := map[string]string{"k": "v"}

	// 1 + 14 ("__metadata__") + 1 + 9 ({"k":"v"}) + 1 + 3 ("a") + 1
	// + 14 ({"dtype":"F32") + 12 (,"shape":[2]) + 21 (,"data_offsets":[0,8]) + 1 + 1 = 79,
	// padded with one space to 80 = 0x50.
	const header = `{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	if len(header) != 79 {
		t.Fatalf("hand count of the header is wrong: %d", len(header))
	}
	want := []byte{0x50, 0, 0, 0, 0, 0, 0, 0}
	want = append(want, header...)
	want = append(want, ' ')
	want = append(want, 0x00, 0x00, 0x80, 0x3f) // 1.0f
	want = append(want, 0x00, 0x00, 0x00, 0x40) // 2.0f

	got, err := Encode(tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Encode:\n got %q\nwant %q", got, want)
	}
	dec, decMeta, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec, tensors) || !reflect.DeepEqual(decMeta, meta) {
		t.Errorf("Decode(golden) = %+v %v", dec, decMeta)
	}
}

// TestDecodeForeignOrder reads a file laid out as the reference
// implementation would (data in a different order than the header keys,
// header padded, keys in another order inside an entry).
func TestDecodeForeignOrder(t *testing.T) {
	header := `{"b":{"shape":[1],"data_offsets":[0,4],"dtype":"I32"}, "a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}   `
	data := []byte{7, 0, 0, 0, 9, 8}
	got, meta, err := Decode(fileOf(header, data))
	if err != nil {
		t.Fatal(err)
	}
	want := []preprocess.Tensor{
		{Name: "b", DType: preprocess.Int32, Shape: []int{1}, Data: []byte{7, 0, 0, 0}},
		{Name: "a", DType: preprocess.Uint8, Shape: []int{2}, Data: []byte{9, 8}},
	}
	if !reflect.DeepEqual(got, want) || meta != nil {
		t.Errorf("Decode = %+v, %v; want %+v, nil", got, meta, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	f4 := []byte{0, 0, 128, 63}
	tooLong := binary.LittleEndian.AppendUint64(nil, MaxHeaderBytes+1)
	tooLong = append(tooLong, "{}"...)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"shorter than length field", []byte{1, 2, 3}, "shorter than the 8-byte header length"},
		{"header length past end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "header length 100 exceeds the 2 bytes"},
		{"header length over limit", tooLong, "exceeds the limit"},
		{"empty header", fileOf("", nil), "does not start with '{'"},
		{"header not an object", fileOf(`["a"]`, nil), "does not start with '{'"},
		{"header not UTF-8", fileOf("{\"\xff\":1}", nil), "not valid UTF-8"},
		{"truncated JSON", fileOf(`{"a":{"dtype":"F32"`, nil), `tensor "a": JSON ends early`},
		{"malformed JSON", fileOf(`{"a":{"dtype":"F32",,}}`, nil), `tensor "a": bad JSON`},
		{"bytes after the object", fileOf(`{} x`, nil), "unexpected bytes after the JSON object"},
		{"tensor twice", fileOf(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f4), `tensor "a": appears twice`},
		{"empty tensor name", fileOf(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f4), "empty name"},
		{"entry not an object", fileOf(`{"a":[1]}`, nil), `tensor "a": want "{"`},
		{"metadata twice", fileOf(`{"__metadata__":{},"__metadata__":{}}`, nil), `"__metadata__" appears twice`},
		{"metadata not an object", fileOf(`{"__metadata__":"x"}`, nil), `__metadata__: want "{"`},
		{"metadata value not a string", fileOf(`{"__metadata__":{"n":1}}`, nil), `value of "n" must be a string, got number 1`},
		{"metadata key twice", fileOf(`{"__metadata__":{"n":"1","n":"2"}}`, nil), `key "n" appears twice`},
		{"unknown dtype", fileOf(`{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)), `tensor "a": unknown dtype "F64"`},
		{"dtype not a string", fileOf(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, f4), `tensor "a": dtype must be a string`},
		{"dtype twice", fileOf(`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f4), `tensor "a": dtype appears twice`},
		{"negative dimension", fileOf(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f4), `tensor "a" shape: want a non-negative integer, got -1`},
		{"fractional dimension", fileOf(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, f4), `tensor "a" shape: want a non-negative integer, got 1.5`},
		{"shape not an array", fileOf(`{"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}`, f4), `tensor "a" shape: want "["`},
		{"shape overflows", fileOf(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, f4), `tensor "a": shape [4294967296 4294967296] is too large`},
		{"one offset", fileOf(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, f4), `tensor "a": data_offsets must hold 2 numbers, got 1`},
		{"offsets reversed", fileOf(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, f4), `tensor "a": data_offsets [4, 0] end before they begin`},
		{"offsets beyond data", fileOf(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f4), `tensor "a": data_offsets [0, 8] beyond the 4-byte data section`},
		{"size mismatch", fileOf(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, f4), `tensor "a": shape [2] of F32 needs 8 bytes, data_offsets [0, 4] hold 4`},
		{"missing dtype", fileOf(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, f4), `tensor "a": no dtype`},
		{"missing shape", fileOf(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, f4), `tensor "a": no shape`},
		{"missing offsets", fileOf(`{"a":{"dtype":"F32","shape":[1]}}`, f4), `tensor "a": no data_offsets`},
		{"unknown key", fileOf(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"strides":[1]}}`, f4), `tensor "a": unknown key "strides"`},
		{"overlap", fileOf(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, f4), `tensor "b": data_offsets [2, 4] overlap tensor "a", which ends at 4`},
		{"gap", fileOf(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, f4), `tensor "b": data_offsets [2, 4] leave bytes [1, 2) unused`},
		{"trailing data", fileOf(`{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}`, f4), "tensors cover 3 bytes but the data section has 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Decode(tc.file)
			if err == nil {
				t.Fatalf("Decode succeeded, want an error containing %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := preprocess.Tensor{Name: "ok", DType: preprocess.Uint8, Shape: []int{1}, Data: []byte{1}}
	for _, tc := range []struct {
		name    string
		tensors []preprocess.Tensor
		meta    map[string]string
		want    string
	}{
		{"empty name", []preprocess.Tensor{{DType: preprocess.Uint8, Shape: []int{0}}}, nil, "tensor 0: empty name"},
		{"reserved name", []preprocess.Tensor{{Name: MetadataKey, DType: preprocess.Uint8, Shape: []int{0}}}, nil, "is reserved"},
		{"name twice", []preprocess.Tensor{ok, ok}, nil, `tensor "ok": name used twice`},
		{"name not UTF-8", []preprocess.Tensor{{Name: "\xff", DType: preprocess.Uint8, Shape: []int{0}}}, nil, "not valid UTF-8"},
		{"unknown dtype", []preprocess.Tensor{{Name: "x", DType: "F64", Shape: []int{1}, Data: make([]byte, 8)}}, nil, `tensor "x": unknown dtype "F64"`},
		{"negative dimension", []preprocess.Tensor{{Name: "x", DType: preprocess.Uint8, Shape: []int{-1}}}, nil, `tensor "x": bad shape [-1]`},
		{"data too short", []preprocess.Tensor{{Name: "x", DType: preprocess.Float32, Shape: []int{2}, Data: make([]byte, 7)}}, nil, `tensor "x": shape [2] of F32 needs 8 bytes, data has 7`},
		{"metadata value not UTF-8", []preprocess.Tensor{ok}, map[string]string{"k": "\xfe"}, `metadata "k": value is not valid UTF-8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("keep")
			out, err := AppendEncode(prefix, tc.tensors, tc.meta)
			if err == nil {
				t.Fatalf("AppendEncode succeeded, want an error containing %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrInvalid containing %q", err, tc.want)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed on error: %q", out)
			}
		})
	}
}

func TestAppendEncodeReusesBuffer(t *testing.T) {
	tensors := everyDType()
	meta := map[string]string{"pipeline": "text"}
	want, err := Encode(tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	buf = append(buf, "prefix"...)
	out, err := AppendEncode(buf, tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &buf[:1][0] {
		t.Error("AppendEncode allocated although dst had room")
	}
	if string(out[:6]) != "prefix" || !bytes.Equal(out[6:], want) {
		t.Error("AppendEncode did not append exactly Encode's bytes after the prefix")
	}
	// A second use of the same buffer gives the same bytes.
	out2, err := AppendEncode(out[:0], tensors, meta)
	if err != nil || !bytes.Equal(out2, want) {
		t.Errorf("reused buffer: err %v, equal %v", err, bytes.Equal(out2, want))
	}
}

func TestEncodedSizeMatches(t *testing.T) {
	meta := map[string]string{}
	var tensors []preprocess.Tensor
	for i := range 40 {
		// Names and values with escapes and multi-byte runes, offsets crossing
		// digit-count boundaries.
		name := strings.Repeat("n\"\\\x02é", i%3) + string(rune('a'+i%26)) + strings.Repeat("x", i)
		tensors = append(tensors, preprocess.Tensor{Name: name, DType: preprocess.Uint8, Shape: []int{i, 1}, Data: make([]byte, i)})
		meta[name] = strings.Repeat("\t\r\n\x1f", i%4)
		enc, err := Encode(tensors, meta)
		if err != nil {
			t.Fatal(err)
		}
		if got := EncodedSize(tensors, meta); got != len(enc) {
			t.Fatalf("%d tensors: EncodedSize = %d, len(Encode) = %d", len(tensors), got, len(enc))
		}
	}
}

func equalDecoded(t *testing.T, at string, t1, t2 []preprocess.Tensor, m1, m2 map[string]string) {
	t.Helper()
	if len(t1) != len(t2) {
		t.Fatalf("%s: %d tensors, want %d", at, len(t2), len(t1))
	}
	for i := range t1 {
		a, b := t1[i], t2[i]
		if a.Name != b.Name || a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
			t.Fatalf("%s: tensor %d: got %+v want %+v", at, i, b, a)
		}
	}
	if len(m1) != len(m2) {
		t.Fatalf("%s: metadata %q, want %q", at, m2, m1)
	}
	for k, v := range m1 {
		if m2[k] != v {
			t.Fatalf("%s: metadata %q, want %q", at, m2, m1)
		}
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// survives Encode and a second Decode unchanged.
func FuzzDecode(f *testing.F) {
	enc, err := Encode(everyDType(), map[string]string{"ids": `["x"]`})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(fileOf(`{"b":{"shape":[1],"data_offsets":[0,4],"dtype":"I32"},"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}`, []byte{7, 0, 0, 0, 9, 8}))
	f.Add(fileOf(`{}`, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tensors, meta, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		enc, err := Encode(tensors, meta)
		if err != nil {
			t.Fatalf("Encode refused what Decode accepted: %v", err)
		}
		if len(enc) != EncodedSize(tensors, meta) {
			t.Fatalf("EncodedSize %d != %d", EncodedSize(tensors, meta), len(enc))
		}
		tensors2, meta2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(x)): %v", err)
		}
		equalDecoded(t, "decode(encode(decode(b)))", tensors, tensors2, meta, meta2)
	})
}

// FuzzRoundTrip builds tensors from fuzzed parts and checks
// Decode(Encode(x)) == x.
func FuzzRoundTrip(f *testing.F) {
	f.Add("pixel_values", uint8(0), []byte{1, 3, 2}, "ids", `["a"]`, []byte{9})
	f.Add("a\"b", uint8(4), []byte{2, 0}, "", "\x00", []byte{})
	f.Fuzz(func(t *testing.T, name string, dt uint8, dims []byte, mk, mv string, seed []byte) {
		dtypes := []preprocess.DType{preprocess.Float32, preprocess.Float16, preprocess.BFloat16, preprocess.Uint8, preprocess.Int64, preprocess.Int32}
		if len(dims) > 4 {
			dims = dims[:4]
		}
		shape := make([]int, len(dims))
		n := 1
		for i, d := range dims {
			shape[i] = int(d % 8)
			n *= shape[i]
		}
		tn := preprocess.Tensor{Name: name, DType: dtypes[int(dt)%len(dtypes)], Shape: shape}
		tn.Data = make([]byte, n*tn.DType.Size())
		for i := range tn.Data {
			if len(seed) > 0 {
				tn.Data[i] = seed[i%len(seed)] + byte(i)
			}
		}
		tensors := []preprocess.Tensor{tn, {Name: name + "_2", DType: preprocess.Uint8, Shape: []int{len(seed)}, Data: seed}}
		meta := map[string]string{mk: mv}
		enc, err := Encode(tensors, meta)
		if err != nil {
			// Only names and metadata that are not UTF-8, or a reserved or
			// empty name, may be refused.
			refusable := name == "" || name == MetadataKey || !utf8.ValidString(name) || !utf8.ValidString(mk) || !utf8.ValidString(mv)
			if !errors.Is(err, ErrInvalid) || !refusable {
				t.Fatalf("Encode refused valid input: %v", err)
			}
			return
		}
		got, gotMeta, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(x)): %v", err)
		}
		equalDecoded(t, "decode(encode(x))", tensors, got, meta, gotMeta)
	})
}
