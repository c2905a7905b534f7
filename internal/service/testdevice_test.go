//go:build !cuda

package service_test

import "github.com/stoker-ml/stoker/internal/service"

// testDevice is where the service tests run their pipelines: the CPU in
// the default build; in a `-tags cuda` build, the GPU (or kernels/fakecuda
// standing in for it, make test-cuda-fake), so that every test here also
// runs the GPU processors end to end.
const testDevice = service.DeviceCPU
