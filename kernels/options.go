package kernels

// Options tune a Device. The zero value means the defaults.
type Options struct {
	// Slots is the number of batches in flight, each with its own stream,
	// pinned buffers and device buffers. Default 3: the upload of batch
	// n+1, the kernel of batch n and the download of batch n-1 overlap.
	Slots int
	// PackWorkers is the number of goroutines that copy a batch's pixels
	// into pinned memory. Default runtime.GOMAXPROCS(0).
	PackWorkers int
}

// Ceilings are the bandwidths the GPU stage is judged against, measured on
// the machine by Device.MeasureCeilings. Bytes per second.
type Ceilings struct {
	HostToDevice float64 // pinned host memory to device memory (cuMemcpyHtoDAsync)
	DeviceToHost float64 // device memory to pinned host memory
	// DeviceMemory counts the bytes a device-to-device copy reads plus the
	// bytes it writes: an estimate of DRAM bandwidth.
	DeviceMemory float64
	Bytes        int // size of each copy
	Reps         int // copies timed per direction
}
