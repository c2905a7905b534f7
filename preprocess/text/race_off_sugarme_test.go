//go:build !race

package text

// raceEnabled: see race_on_sugarme_test.go.
const raceEnabled = false
