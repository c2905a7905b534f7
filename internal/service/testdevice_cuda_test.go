//go:build cuda

package service_test

import "github.com/stoker-ml/stoker/internal/service"

// testDevice: see testdevice_test.go.
const testDevice = service.DeviceCUDA
