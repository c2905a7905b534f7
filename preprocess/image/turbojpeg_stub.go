//go:build !turbojpeg

package image

// turboState is empty without the turbojpeg build tag: JPEGs are decoded by
// Go's image/jpeg.
type turboState struct{}

// TurboJPEG reports whether this build decodes JPEGs with libjpeg-turbo.
const TurboJPEG = false

func (t *turboState) shrink(int) {}

func (t *turboState) decodeBytes([]byte, Spec) (int64, bool, error) { return 0, false, nil }

func (t *turboState) decode(data []byte, s Spec, dst *RGB) (*RGB, bool, error) {
	return nil, false, nil
}
