package metrics

import (
	"encoding/binary"
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoker-ml/stoker/preprocess"
)

// Names of the tensors and row facts ObserveBatch reads. They are the names
// preprocess/image and preprocess/text publish (a test checks).
const (
	TensorPixelValues   = "pixel_values"   // image: [B,3,H,W] (NCHW) or [B,H,W,3] (NHWC)
	TensorInputIDs      = "input_ids"      // text: [B,L]
	TensorAttentionMask = "attention_mask" // text: [B,L], 1 for real tokens
	FactOriginalSize    = "original_size"  // image: [2]int{height, width} per row
	FactNumTokens       = "num_tokens"     // text: int per row, before padding
)

// DriftWindowItems is the number of recent images the running channel
// statistics mostly reflect: each image moves the exponentially weighted
// mean by 1/DriftWindowItems of the way (the first images are averaged
// plainly, so the first value is not biased towards zero).
const DriftWindowItems = 1000

// driftSamplesPerImage bounds the pixels read per image for the channel
// statistics; the pixels are taken at an even stride over the image.
const driftSamplesPerImage = 1024

// channelNames are the "channel" label values, in tensor order (the
// configuration's mean and std are given in R, G, B order).
var channelNames = [3]string{"r", "g", "b"}

// DefaultNormalization is the per-channel (R, G, B) mean and std that
// ObserveBatch applies to uint8 image tensors of a pipeline without
// SetImageNormalization: the ImageNet statistics, stoker's default.
var DefaultNormalization = [2][3]float64{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}}

// drift holds the running state of the drift signals.
type drift struct {
	mu    sync.Mutex
	unk   map[string]int32         // pipeline → unknown-token id
	norm  map[string][2][3]float64 // pipeline → mean, std for uint8 tensors
	image map[string]*channelStats // pipeline → running channel stats
}

// channelStats is an exponentially weighted mean of x and x² per channel.
type channelStats struct {
	n      int // images seen, capped at DriftWindowItems
	mean   [3]float64
	meanSq [3]float64
}

// add folds one image's per-channel sample mean and mean square in.
func (s *channelStats) add(mean, meanSq [3]float64) {
	if s.n < DriftWindowItems {
		s.n++
	}
	w := 1 / float64(s.n)
	for c := range 3 {
		s.mean[c] += w * (mean[c] - s.mean[c])
		s.meanSq[c] += w * (meanSq[c] - s.meanSq[c])
	}
}

func (s *channelStats) std(c int) float64 {
	return math.Sqrt(max(0, s.meanSq[c]-s.mean[c]*s.mean[c]))
}

// newDriftFamilies creates the drift families on m.
func (m *Metrics) newDriftFamilies() []prometheus.Collector {
	sides := prometheus.ExponentialBuckets(16, 2, 10) // 16 … 8192
	m.ImageChannelMean = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stoker_image_channel_mean",
		Help: "Running mean of each channel of the published images in normalised units ((pixel/255 - mean)/std), over about the last 1000 images.",
	}, []string{"pipeline", "channel"})
	m.ImageChannelStd = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stoker_image_channel_std",
		Help: "Running standard deviation of each channel of the published images in normalised units, over about the last 1000 images.",
	}, []string{"pipeline", "channel"})
	m.ImageHeightPixels = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "stoker_image_input_height_pixels", Help: "Height of the input images before resizing.",
		Buckets: sides,
	}, []string{"pipeline"})
	m.ImageWidthPixels = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "stoker_image_input_width_pixels", Help: "Width of the input images before resizing.",
		Buckets: sides,
	}, []string{"pipeline"})
	m.TextItemTokens = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "stoker_text_item_tokens", Help: "Tokens per text item before padding, special tokens included, after truncation.",
		Buckets: prometheus.ExponentialBuckets(4, 2, 12), // 4 … 8192
	}, []string{"pipeline"})
	m.TextTokensTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stoker_text_tokens_total", Help: "Tokens published (attention mask 1), special tokens included.",
	}, []string{"pipeline"})
	m.TextUnknownTokensTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stoker_text_unknown_tokens_total", Help: "Published tokens equal to the tokenizer's unknown token ([UNK]); divide its rate by stoker_text_tokens_total's for the [UNK] rate.",
	}, []string{"pipeline"})
	m.drift = &drift{unk: map[string]int32{}, norm: map[string][2][3]float64{}, image: map[string]*channelStats{}}
	return []prometheus.Collector{m.ImageChannelMean, m.ImageChannelStd, m.ImageHeightPixels,
		m.ImageWidthPixels, m.TextItemTokens, m.TextTokensTotal, m.TextUnknownTokensTotal}
}

// SetUnknownTokenID tells ObserveBatch which token id is the unknown token
// ([UNK]) of the pipeline's tokenizer. Until it is called for a pipeline,
// ObserveBatch counts that pipeline's tokens but not its unknown tokens
// (stoker_text_unknown_tokens_total then has no series for it). A negative
// id (a tokenizer without an unknown token, such as byte-level BPE) records
// zero unknown tokens.
func (m *Metrics) SetUnknownTokenID(pipeline string, id int) {
	m.drift.mu.Lock()
	defer m.drift.mu.Unlock()
	m.drift.unk[pipeline] = int32(id)
	m.TextUnknownTokensTotal.WithLabelValues(pipeline).Add(0)
}

// SetImageNormalization gives the per-channel (R, G, B) mean and std of a
// pipeline's image.mean and image.std. ObserveBatch applies them to uint8
// tensors (resized pixels, not normalised by the processor) so that the
// channel statistics of every pipeline are in normalised units; float
// tensors are normalised already. Without it DefaultNormalization applies.
func (m *Metrics) SetImageNormalization(pipeline string, mean, std [3]float32) {
	m.drift.mu.Lock()
	defer m.drift.mu.Unlock()
	var n [2][3]float64
	for c := range 3 {
		n[0][c], n[1][c] = float64(mean[c]), float64(std[c])
	}
	m.drift.norm[pipeline] = n
}

// ObserveBatch updates the drift signals from a processed batch: the image
// channel statistics and input sizes when b has the tensor pixel_values
// and the row fact original_size, the token counts and unknown tokens when
// it has input_ids and attention_mask (and num_tokens). It reads the
// tensors, never changes them, and ignores what it does not recognise, so
// it is safe to call on every batch of every pipeline. Concurrent calls are
// safe. The image statistics sample at most 1024 pixels per image.
func (m *Metrics) ObserveBatch(pipeline string, b *preprocess.Batch) {
	if b == nil || b.Len() == 0 {
		return
	}
	for _, f := range b.RowFacts[FactOriginalSize] {
		if hw, ok := f.([2]int); ok {
			m.ImageHeightPixels.WithLabelValues(pipeline).Observe(float64(hw[0]))
			m.ImageWidthPixels.WithLabelValues(pipeline).Observe(float64(hw[1]))
		}
	}
	for _, f := range b.RowFacts[FactNumTokens] {
		if n, ok := f.(int); ok {
			m.TextItemTokens.WithLabelValues(pipeline).Observe(float64(n))
		}
	}
	var ids, mask *preprocess.Tensor
	for i := range b.Tensors {
		t := &b.Tensors[i]
		switch t.Name {
		case TensorPixelValues:
			m.observePixels(pipeline, t)
		case TensorInputIDs:
			ids = t
		case TensorAttentionMask:
			mask = t
		}
	}
	if ids != nil && mask != nil {
		m.observeTokens(pipeline, ids, mask)
	}
}

// observePixels updates the running channel statistics from an image
// tensor whose layout is read from its shape: [B,3,H,W] is NCHW, [B,H,W,3]
// NHWC (NCHW when both could be).
func (m *Metrics) observePixels(pipeline string, t *preprocess.Tensor) {
	read := elementReader(t.DType)
	if read == nil || len(t.Shape) != 4 || t.NumElements()*t.DType.Size() != len(t.Data) {
		return
	}
	rows := t.Shape[0]
	var hw, chanStride, pixStride int // element offsets
	switch {
	case t.Shape[1] == 3:
		hw = t.Shape[2] * t.Shape[3]
		chanStride, pixStride = hw, 1
	case t.Shape[3] == 3:
		hw = t.Shape[1] * t.Shape[2]
		chanStride, pixStride = 1, 3
	default:
		return
	}
	if hw == 0 {
		return
	}
	// Channel c of a uint8 tensor is normalised as the processor would:
	// (v/255 - mean[c]) / std[c]; float tensors pass unchanged.
	scale, shift := [3]float64{1, 1, 1}, [3]float64{}
	if t.DType == preprocess.Uint8 {
		m.drift.mu.Lock()
		n, ok := m.drift.norm[pipeline]
		m.drift.mu.Unlock()
		if !ok {
			n = DefaultNormalization
		}
		for c := range 3 {
			if n[1][c] == 0 {
				return
			}
			scale[c] = 1 / (255 * n[1][c])
			shift[c] = -n[0][c] / n[1][c]
		}
	}
	step := max(1, hw/driftSamplesPerImage)
	size := t.DType.Size()
	perImage := make([][2][3]float64, rows)
	for r := range rows {
		base := r * 3 * hw
		var sum, sumSq [3]float64
		n := 0
		for p := 0; p < hw; p += step {
			for c := range 3 {
				v := read(t.Data[(base+c*chanStride+p*pixStride)*size:])*scale[c] + shift[c]
				sum[c] += v
				sumSq[c] += v * v
			}
			n++
		}
		for c := range 3 {
			perImage[r][0][c] = sum[c] / float64(n)
			perImage[r][1][c] = sumSq[c] / float64(n)
		}
	}
	m.drift.mu.Lock()
	s := m.drift.image[pipeline]
	if s == nil {
		s = &channelStats{}
		m.drift.image[pipeline] = s
	}
	for _, st := range perImage {
		s.add(st[0], st[1])
	}
	var mean, std [3]float64
	for c := range 3 {
		mean[c], std[c] = s.mean[c], s.std(c)
	}
	m.drift.mu.Unlock()
	for c, name := range channelNames {
		m.ImageChannelMean.WithLabelValues(pipeline, name).Set(mean[c])
		m.ImageChannelStd.WithLabelValues(pipeline, name).Set(std[c])
	}
}

// observeTokens counts the real tokens (mask 1) and the unknown ones.
func (m *Metrics) observeTokens(pipeline string, ids, mask *preprocess.Tensor) {
	readID, readMask := elementReader(ids.DType), elementReader(mask.DType)
	n := ids.NumElements()
	if readID == nil || readMask == nil || mask.NumElements() != n ||
		len(ids.Data) != n*ids.DType.Size() || len(mask.Data) != n*mask.DType.Size() {
		return
	}
	m.drift.mu.Lock()
	unk, haveUnk := m.drift.unk[pipeline]
	m.drift.mu.Unlock()
	var tokens, unknown int
	is, ms := ids.DType.Size(), mask.DType.Size()
	for i := range n {
		if readMask(mask.Data[i*ms:]) == 0 {
			continue
		}
		tokens++
		if haveUnk && int32(readID(ids.Data[i*is:])) == unk {
			unknown++
		}
	}
	m.TextTokensTotal.WithLabelValues(pipeline).Add(float64(tokens))
	if haveUnk {
		m.TextUnknownTokensTotal.WithLabelValues(pipeline).Add(float64(unknown))
	}
}

// elementReader returns a function reading one little-endian element of
// dtype d as a float64, or nil for a dtype it does not know.
func elementReader(d preprocess.DType) func([]byte) float64 {
	switch d {
	case preprocess.Float32:
		return func(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) }
	case preprocess.Float16:
		return func(b []byte) float64 { return float64(float16ToFloat32(binary.LittleEndian.Uint16(b))) }
	case preprocess.BFloat16:
		return func(b []byte) float64 {
			return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
		}
	case preprocess.Uint8:
		return func(b []byte) float64 { return float64(b[0]) }
	case preprocess.Int64:
		return func(b []byte) float64 { return float64(int64(binary.LittleEndian.Uint64(b))) }
	case preprocess.Int32:
		return func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) }
	}
	return nil
}

// float16ToFloat32 widens an IEEE 754 half-precision value exactly.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal half: mant × 2^-24, exact in float32.
	f := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		f = -f
	}
	return f
}
