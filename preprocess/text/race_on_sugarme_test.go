//go:build race

package text

// raceEnabled: the race detector slows sugarme about tenfold, so the
// sugarme tests use a smaller sample (quickSample).
const raceEnabled = true
