//go:build !turbojpeg

package image

// turboState is empty without the turbojpeg build tag: JPEGs are decoded by
// Go's image/jpeg.
type turboState struct{}

// TurboJPEG reports whether this build decodes JPEGs with libjpeg-turbo.
const TurboJPEG = false

func (t *turboState) shrink(int) {}

func (t *turboState) decode([]byte, Spec, *RGB, func(int64)) (*RGB, bool, error) {
	return nil, false, nil
}
