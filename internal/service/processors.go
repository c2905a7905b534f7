package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/gpu"
	"github.com/stoker-ml/stoker/preprocess/image"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// Devices.
const (
	DeviceAuto = "auto"
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// ResolveDevice turns the configured device into the one used: auto picks
// cuda when this build has CUDA and a usable GPU, else cpu; cuda without
// one is an error saying why.
func ResolveDevice(want string) (string, error) {
	switch want {
	case DeviceCPU:
		return DeviceCPU, nil
	case DeviceAuto, "":
		if gpu.Available() == nil {
			return DeviceCUDA, nil
		}
		return DeviceCPU, nil
	case DeviceCUDA:
		if err := gpu.Available(); err != nil {
			return "", fmt.Errorf("device cuda: %w", err)
		}
		return DeviceCUDA, nil
	}
	return "", fmt.Errorf("device %q: want auto, cpu or cuda", want)
}

// Processor is a preprocess.Processor that may hold resources to release.
type Processor interface {
	preprocess.Processor
	Close() error
}

// nopCloser is a CPU processor, which holds nothing to release.
type nopCloser struct{ preprocess.Processor }

func (nopCloser) Close() error { return nil }

// Device says the processor runs on the CPU (worker.DeviceReporter): a
// text pipeline on cuda whose tokenizer the GPU kernels do not run is
// counted under cpu.
func (nopCloser) Device() string { return DeviceCPU }

// unwrap returns the processor inside stoker's wrappers.
func unwrap(p Processor) preprocess.Processor {
	switch w := p.(type) {
	case nopCloser:
		return w.Processor
	case gpuImage:
		return w.Processor
	case gpuText:
		return w.TextProcessor
	}
	return p
}

// gpuImage is the GPU image processor with the device it owns.
type gpuImage struct {
	*gpu.Processor
	dev *kernels.Device
}

func (g gpuImage) Close() error { return g.dev.Close() }

// gpuText is the GPU text processor with the device it owns.
type gpuText struct {
	*gpu.TextProcessor
	dev *kernels.Device
}

func (g gpuText) Close() error { return errors.Join(g.TextProcessor.Close(), g.dev.Close()) }

// NewProcessor builds the processor for a pipeline on a resolved device.
// On cuda it opens GPU 0 for the processor; Close releases it. A text
// pipeline whose tokenizer the GPU kernels do not run (byte-level BPE, or
// WordPiece beyond the kernels' limits: gpu.ErrUnsupportedTokenizer) gets
// the CPU text processor on cuda, with a warning on slog.Default() that
// says why.
func NewProcessor(p *config.Pipeline, device string) (Processor, error) {
	return newProcessor(p, device, slog.Default())
}

// newProcessor is NewProcessor, warning on log.
func newProcessor(p *config.Pipeline, device string, log *slog.Logger) (Processor, error) {
	switch {
	case p.Image != nil:
		if device == DeviceCUDA {
			dev, err := kernels.Open(context.Background(), 0)
			if err != nil {
				return nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
			}
			proc, err := gpu.NewImageProcessor(*p.Image, dev, p.Threads)
			if err != nil {
				dev.Close()
				return nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
			}
			return gpuImage{proc, dev}, nil
		}
		proc, err := image.NewProcessor(*p.Image, p.Threads)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
		}
		return nopCloser{proc}, nil
	case p.Text != nil:
		if device == DeviceCUDA {
			dev, err := kernels.Open(context.Background(), 0)
			if err != nil {
				return nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
			}
			proc, err := gpu.NewTextProcessor(*p.Text, dev, p.Threads)
			if err == nil {
				return gpuText{proc, dev}, nil
			}
			if cerr := dev.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close the GPU: %w", cerr))
			}
			if !errors.Is(err, gpu.ErrUnsupportedTokenizer) {
				return nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
			}
			// Byte-level BPE, or WordPiece beyond the kernels' limits:
			// the CPU tokenizer runs it.
			log.Warn("the GPU text path does not run this pipeline's tokenizer; it runs on the CPU",
				"pipeline", p.Name, "tokenizer", p.Text.Tokenizer, "reason", err.Error())
		}
		proc, err := text.NewProcessor(*p.Text, p.Threads)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", p.Name, err)
		}
		return nopCloser{proc}, nil
	}
	return nil, errors.New("pipeline " + p.Name + ": neither an image nor a text section")
}
