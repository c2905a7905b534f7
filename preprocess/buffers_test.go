package preprocess

import "testing"

func TestBuffersGetGivesTheSizeAsked(t *testing.T) {
	var p Buffers
	for _, n := range []int{0, 10, 1 << 20, 100, 1 << 21} {
		b := p.Get(n)
		if len(b) != n {
			t.Fatalf("Get(%d) gave %d bytes", n, len(b))
		}
		p.Put(b)
	}
}

func TestReleaseRunsEachCallbackOnce(t *testing.T) {
	b := &Batch{Tensors: []Tensor{{Name: "x", Data: []byte{1}}}}
	calls := 0
	b.OnRelease(func() { calls++ })
	b.OnRelease(func() { calls += 10 })
	b.Release()
	b.Release()
	if calls != 11 || b.Tensors != nil {
		t.Fatalf("after two Releases: callbacks counted %d (want 11), tensors %v (want none)", calls, b.Tensors)
	}
	(&Batch{}).Release() // a batch without callbacks
}
