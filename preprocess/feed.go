package preprocess

import "context"

// Feed hands the indices 0..n-1 of a batch's items to the workers ranging
// over next, then closes next. It stops handing out indices once ctx is
// done and returns ctx's error; a context already done when Feed is called
// gets no index at all (a select between a ready worker and a done context
// would pick one at random). The caller waits for its workers either way.
func Feed(ctx context.Context, n int, next chan<- int) error {
	defer close(next)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case next <- i:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
