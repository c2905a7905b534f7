package kernels

import "testing"

func TestByteSize(t *testing.T) {
	for n, want := range map[int]string{
		0:                "0 B",
		1023:             "1023 B",
		1024:             "1.0 KiB",
		681_300:          "665.3 KiB",
		3_900_000:        "3.7 MiB",
		154_140_672:      "147.0 MiB",
		3 << 30:          "3.0 GiB",
		5 << 40:          "5.0 TiB",
		(5 << 40) * 2048: "10240.0 TiB",
	} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}
