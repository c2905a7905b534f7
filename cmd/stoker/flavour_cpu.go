//go:build !cuda

package main

// buildFlavour says which build this is.
const buildFlavour = "cpu build"
