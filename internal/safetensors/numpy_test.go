package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

// numpyReader is the ten-line reader the README shows: numpy only.
const numpyReader = `
import json, struct, sys
import numpy as np
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); meta = h.pop("__metadata__", {})
kinds = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}
out = {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype=kinds[v["dtype"]]).reshape(v["shape"]).tolist() for k, v in h.items()}
print(json.dumps({"meta": meta, "tensors": out}))
`

// TestNumpyReads checks that an independent reader (Python's json and
// numpy) reads what Encode writes. It skips when python3 or numpy is missing.
func TestNumpyReads(t *testing.T) {
	py := "/usr/bin/python3" // the system Python, where apt puts numpy
	if _, err := os.Stat(py); err != nil {
		var lerr error
		if py, lerr = exec.LookPath("python3"); lerr != nil {
			t.Skip("python3 not found")
		}
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skip("numpy not installed")
	}
	var f16, i64 []byte
	for _, v := range []float32{1.5, -2, 0.25} {
		f16 = binary.LittleEndian.AppendUint16(f16, preprocess.Float16Bits(v))
	}
	for _, v := range []int64{101, 7592, 102, 0} {
		i64 = binary.LittleEndian.AppendUint64(i64, uint64(v))
	}
	tensors := []preprocess.Tensor{
		{Name: "pixel_values", DType: preprocess.Float32, Shape: []int{2, 1, 2}, Data: f32Bytes(0.5, -1, 3.25, 1e6)},
		{Name: "half", DType: preprocess.Float16, Shape: []int{3}, Data: f16},
		{Name: "input_ids", DType: preprocess.Int64, Shape: []int{2, 2}, Data: i64},
		{Name: "raw", DType: preprocess.Uint8, Shape: []int{1, 3}, Data: []byte{0, 128, 255}},
	}
	meta := map[string]string{"ids": `["a","b"]`, "pipeline": "image"}
	enc, err := Encode(tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(path, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", numpyReader, path).Output()
	if err != nil {
		t.Fatalf("python reader: %v", err)
	}
	var got struct {
		Meta    map[string]string
		Tensors map[string]any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("reader output %q: %v", out, err)
	}
	want := map[string]any{
		"pixel_values": []any{[]any{[]any{0.5, -1.0}}, []any{[]any{3.25, 1e6}}},
		"half":         []any{1.5, -2.0, 0.25},
		"input_ids":    []any{[]any{101.0, 7592.0}, []any{102.0, 0.0}},
		"raw":          []any{[]any{0.0, 128.0, 255.0}},
	}
	if !reflect.DeepEqual(got.Meta, meta) {
		t.Errorf("numpy read metadata %v, want %v", got.Meta, meta)
	}
	if !reflect.DeepEqual(got.Tensors, want) {
		t.Errorf("numpy read\n%v\nwant\n%v", got.Tensors, want)
	}
}
